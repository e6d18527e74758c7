// graphmutual CPU neighbour sampler: uniform multi-hop sampling on a destination-sorted CSR.
//
// Row i of the CSR lists the sources j of the edges j -> i, so sampling row i draws
// in-neighbours of i: exactly the nodes whose messages i aggregates.
//
// Per hop, the frontier is processed in two passes:
//   1. parallel (at::parallel_for over frontier nodes): every node draws its neighbours
//      with its own random stream, seeded from (seed, hop, global node id). The draws
//      therefore do not depend on the number of threads or on how the frontier is split.
//      Without replacement a node with degree d and fan-out k keeps all d neighbours when
//      k < 0 or k >= d, else k distinct positions (Floyd's algorithm), returned sorted.
//   2. serial: new nodes are numbered in order of first appearance (seeds first, then the
//      frontier order, then the edge order within a row), which is what PyG's samplers do.
//      A per-thread dense map (global id -> local id) is reset after use, so a call costs
//      O(sampled nodes + edges), not O(num_nodes).
//
// Registered as torch.ops.graphmutual_cpu.sample_neighbors (TORCH_LIBRARY_FRAGMENT; the
// other kernels live in ops_cpu.cpp). Wrapped by graphmutual/ops/sampler.py, which owns the
// input validation; the checks here are a second line of defence.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace graphmutual {
namespace {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A small counter-based generator: one independent stream per (seed, hop, node).
struct NodeRng {
  uint64_t state;
  NodeRng(uint64_t seed, uint64_t hop, uint64_t node) {
    uint64_t s = seed;
    const uint64_t a = splitmix64(s);
    uint64_t t = a ^ (hop * 0xD1B54A32D192ED03ULL) ^ (node * 0x8CB92BA72F3D8DD7ULL);
    state = splitmix64(t);
  }
  // uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < n / 2^64)
  inline int64_t below(int64_t n) {
    const unsigned __int128 m = static_cast<unsigned __int128>(splitmix64(state)) *
                                static_cast<uint64_t>(n);
    return static_cast<int64_t>(m >> 64);
  }
};

inline int64_t num_picks(int64_t deg, int64_t k, bool replace) {
  if (k < 0) return deg;
  if (deg == 0) return 0;
  return replace ? k : std::min(k, deg);
}

// Writes the picked offsets (in [0, deg)) of one row into out[0 .. count).
void pick_row(NodeRng& rng, int64_t deg, int64_t k, bool replace, int64_t* out,
              std::vector<char>& mark) {
  const int64_t count = num_picks(deg, k, replace);
  if (count == 0) return;
  if (k < 0 || (!replace && k >= deg)) {
    for (int64_t j = 0; j < deg; ++j) out[j] = j;
    return;
  }
  if (replace) {
    for (int64_t j = 0; j < count; ++j) out[j] = rng.below(deg);
    std::sort(out, out + count);
    return;
  }
  // Floyd's algorithm: k distinct values in [0, deg) in O(k) draws.
  int64_t n = 0;
  if (k <= 64) {
    for (int64_t j = deg - k; j < deg; ++j) {
      const int64_t t = rng.below(j + 1);
      bool seen = false;
      for (int64_t q = 0; q < n; ++q) {
        if (out[q] == t) { seen = true; break; }
      }
      out[n++] = seen ? j : t;
    }
    std::sort(out, out + count);
    return;
  }
  mark.assign(deg, 0);
  for (int64_t j = deg - k; j < deg; ++j) {
    const int64_t t = rng.below(j + 1);
    if (mark[t]) mark[j] = 1; else mark[t] = 1;
  }
  for (int64_t j = 0; j < deg; ++j) {
    if (mark[j]) out[n++] = j;
  }
}

// Per-thread dense map global id -> local id (-1 = unseen); entries set by a call are
// reset by its guard, so the map is all -1 between calls.
struct LocalMap {
  std::vector<int64_t>& map;
  const std::vector<int64_t>& nodes;
  LocalMap(std::vector<int64_t>& m, const std::vector<int64_t>& n, int64_t N) : map(m), nodes(n) {
    if (static_cast<int64_t>(map.size()) < N) map.resize(N, -1);
  }
  ~LocalMap() {
    for (const int64_t v : nodes) map[v] = -1;
  }
};

std::vector<int64_t>& thread_map() {
  static thread_local std::vector<int64_t> m;
  return m;
}

}  // namespace

// Returns (node, row, col, edge, num_sampled_nodes, num_sampled_edges):
//   node  [S]  global ids of the sampled nodes, the seeds first;
//   row   [E'] local index of the source of every sampled edge (the sampled neighbour);
//   col   [E'] local index of its destination (the node it was sampled for);
//   edge  [E'] position of the edge in the CSR (map through CSR.perm for edge_index ids);
//   num_sampled_nodes [hops + 1], num_sampled_edges [hops] (int64 tensors).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
sample_neighbors(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& seeds,
                 at::IntArrayRef fanouts, int64_t seed, bool replace) {
  TORCH_CHECK_VALUE(rowptr.dim() == 1 && rowptr.numel() >= 1, "rowptr must be 1-D and non-empty");
  TORCH_CHECK_VALUE(col.dim() == 1, "col must be 1-D");
  TORCH_CHECK_VALUE(rowptr.scalar_type() == col.scalar_type(),
                    "rowptr and col must have the same integer dtype");
  TORCH_CHECK_VALUE(rowptr.is_contiguous() && col.is_contiguous(), "rowptr/col must be contiguous");
  TORCH_CHECK_VALUE(seeds.dim() == 1 && seeds.scalar_type() == at::kLong && seeds.is_contiguous(),
                    "seeds must be a contiguous 1-D int64 tensor");
  for (const int64_t k : fanouts) TORCH_CHECK_VALUE(k >= -1, "fan-outs must be >= -1");

  const int64_t N = rowptr.numel() - 1, E = col.numel();
  const int64_t* sp = seeds.const_data_ptr<int64_t>();
  const int64_t S0 = seeds.numel();

  std::vector<int64_t> nodes;
  nodes.reserve(S0);
  std::vector<int64_t> out_row, out_col, out_edge, n_nodes, n_edges;
  std::vector<int64_t>& map = thread_map();
  LocalMap guard(map, nodes, N);

  for (int64_t i = 0; i < S0; ++i) {
    const int64_t v = sp[i];
    TORCH_CHECK_VALUE(v >= 0 && v < N, "seed node ", v, " is out of range [0, ", N, ")");
    TORCH_CHECK_VALUE(map[v] < 0, "seed nodes must be unique (node ", v, " appears twice)");
    map[v] = static_cast<int64_t>(nodes.size());
    nodes.push_back(v);
  }
  n_nodes.push_back(S0);

  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_sample_neighbors", [&] {
    const index_t* rp = rowptr.const_data_ptr<index_t>();
    const index_t* ci = col.const_data_ptr<index_t>();
    int64_t begin = 0, end = S0;
    for (size_t hop = 0; hop < fanouts.size(); ++hop) {
      const int64_t k = fanouts[hop];
      const int64_t F = end - begin;
      std::vector<int64_t> offset(F + 1, 0);
      for (int64_t i = 0; i < F; ++i) {
        const int64_t v = nodes[begin + i];
        const int64_t s = rp[v], t = rp[v + 1];
        TORCH_CHECK_VALUE(s >= 0 && t >= s && t <= E,
                          "graphmutual.ops: malformed CSR (rowptr not monotone)");
        offset[i + 1] = offset[i] + num_picks(t - s, k, replace);
      }
      const int64_t total = offset[F];
      std::vector<int64_t> picked(total);
      std::atomic<bool> bad{false};
      at::parallel_for(0, F, 256, [&](int64_t i0, int64_t i1) {
        std::vector<char> mark;
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t v = nodes[begin + i];
          const int64_t s = rp[v], deg = rp[v + 1] - s;
          NodeRng rng(static_cast<uint64_t>(seed), hop, static_cast<uint64_t>(v));
          int64_t* out = picked.data() + offset[i];
          pick_row(rng, deg, k, replace, out, mark);
          for (int64_t q = 0; q < offset[i + 1] - offset[i]; ++q) {
            out[q] += s;
            const int64_t j = ci[out[q]];
            if (j < 0 || j >= N) bad = true;
          }
        }
      });
      TORCH_CHECK_VALUE(!bad, "graphmutual.ops: malformed CSR (col out of range)");
      out_row.reserve(out_row.size() + total);
      out_col.reserve(out_col.size() + total);
      out_edge.reserve(out_edge.size() + total);
      for (int64_t i = 0; i < F; ++i) {
        const int64_t dst = begin + i;
        for (int64_t q = offset[i]; q < offset[i + 1]; ++q) {
          const int64_t e = picked[q];
          const int64_t j = ci[e];
          int64_t local = map[j];
          if (local < 0) {
            local = static_cast<int64_t>(nodes.size());
            map[j] = local;
            nodes.push_back(j);
          }
          out_row.push_back(local);
          out_col.push_back(dst);
          out_edge.push_back(e);
        }
      }
      n_edges.push_back(total);
      begin = end;
      end = static_cast<int64_t>(nodes.size());
      n_nodes.push_back(end - begin);
    }
  });

  auto to_tensor = [](const std::vector<int64_t>& v) {
    auto t = at::empty({static_cast<int64_t>(v.size())}, at::kLong);
    if (!v.empty()) std::copy(v.begin(), v.end(), t.data_ptr<int64_t>());
    return t;
  };
  return {to_tensor(nodes), to_tensor(out_row), to_tensor(out_col), to_tensor(out_edge),
          to_tensor(n_nodes), to_tensor(n_edges)};
}

}  // namespace graphmutual

TORCH_LIBRARY_FRAGMENT(graphmutual_cpu, m) {
  m.def("sample_neighbors(Tensor rowptr, Tensor col, Tensor seeds, int[] fanouts, int seed, "
        "bool replace) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(graphmutual_cpu, CPU, m) {
  m.impl("sample_neighbors", &graphmutual::sample_neighbors);
}
