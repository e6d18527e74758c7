// graphmutual CPU kernels: CSR aggregation without atomics.
//
// Every kernel walks the rows of a CSR structure sorted by destination. Rows are
// split into chunks of roughly equal work (edges + rows) and processed with
// at::parallel_for; the inner loops run over the contiguous feature dimension so the
// compiler can vectorise them. Each output row is written by exactly one thread, so
// the result is deterministic and no atomics are needed.
//
// Registered as torch.ops.graphmutual_cpu.* (TORCH_LIBRARY, no pybind11) and wrapped
// by the Python custom ops in graphmutual/ops/_custom_ops.py, which own the autograd
// formulas and the input validation. The checks below are a second line of defence:
// a malformed structure raises ValueError instead of reading out of bounds.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

namespace graphmutual {
namespace {

constexpr int64_t kSum = 0, kMean = 1, kMax = 2, kMin = 3;

// Row boundaries so that every chunk gets about the same number of edges + rows.
// work(i) = rowptr[i] + i is non-decreasing for a valid CSR.
template <typename index_t>
std::vector<int64_t> balanced_splits(const index_t* rowptr, int64_t M) {
  const int64_t nthreads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t total = static_cast<int64_t>(rowptr[M]) + M;
  int64_t nchunks = std::min<int64_t>(std::max<int64_t>(M, 1), nthreads * 8);
  if (total < 4096) nchunks = 1;  // not worth spawning threads
  std::vector<int64_t> splits(nchunks + 1, M);
  splits[0] = 0;
  for (int64_t c = 1; c < nchunks; ++c) {
    const int64_t target = total * c / nchunks;
    int64_t lo = splits[c - 1], hi = M;
    while (lo < hi) {  // first row r with work(r) >= target
      const int64_t mid = lo + (hi - lo) / 2;
      if (static_cast<int64_t>(rowptr[mid]) + mid < target) lo = mid + 1; else hi = mid;
    }
    splits[c] = lo;
  }
  return splits;
}

template <typename index_t, typename F>
void for_each_row_chunk(const index_t* rowptr, int64_t M, const F& fn) {
  const auto splits = balanced_splits(rowptr, M);
  const int64_t nchunks = static_cast<int64_t>(splits.size()) - 1;
  at::parallel_for(0, nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) fn(splits[c], splits[c + 1]);
  });
}

void check_csr(const at::Tensor& rowptr, const at::Tensor& col) {
  TORCH_CHECK_VALUE(rowptr.dim() == 1 && rowptr.numel() >= 1, "rowptr must be 1-D and non-empty");
  TORCH_CHECK_VALUE(col.dim() == 1, "col must be 1-D");
  TORCH_CHECK_VALUE(rowptr.scalar_type() == col.scalar_type(),
                    "rowptr and col must have the same integer dtype");
  TORCH_CHECK_VALUE(rowptr.is_contiguous() && col.is_contiguous(), "rowptr/col must be contiguous");
}

#define GM_BAD_ROW(s, t, E) ((s) < 0 || (t) < (s) || (t) > (E))

// out[i, k, :] = sum_{e in row i} w[e, k or 0] * x[col[e], k, :]
at::Tensor spmm(const at::Tensor& rowptr, const at::Tensor& col,
                const c10::optional<at::Tensor>& weight_opt, const at::Tensor& x) {
  check_csr(rowptr, col);
  TORCH_CHECK_VALUE(x.dim() == 3 && x.is_contiguous(), "x must be a contiguous [N, K, F] tensor");
  const int64_t M = rowptr.numel() - 1, E = col.numel();
  const int64_t N = x.size(0), K = x.size(1), F = x.size(2), KF = K * F;
  int64_t wk = 0;
  at::Tensor weight;
  if (weight_opt.has_value() && weight_opt->defined()) {
    weight = *weight_opt;
    TORCH_CHECK_VALUE(weight.dim() == 2 && weight.size(0) == E && weight.is_contiguous(),
                      "weight must be a contiguous [E, K] or [E, 1] tensor");
    TORCH_CHECK_VALUE(weight.size(1) == 1 || weight.size(1) == K, "weight.size(1) must be 1 or K");
    TORCH_CHECK_VALUE(weight.scalar_type() == x.scalar_type(), "weight and x dtypes differ");
    wk = weight.size(1);
  }
  auto out = at::empty({M, K, F}, x.options());
  std::atomic<bool> bad{false};
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_spmm", [&] {
    const index_t* rp = rowptr.const_data_ptr<index_t>();
    const index_t* ci = col.const_data_ptr<index_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "graphmutual_spmm", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* __restrict__ xp = x.const_data_ptr<scalar_t>();
      const scalar_t* __restrict__ wp = wk ? weight.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* __restrict__ op = out.data_ptr<scalar_t>();
      for_each_row_chunk(rp, M, [&](int64_t r0, int64_t r1) {
        std::vector<acc_t> buf(KF);
        acc_t* __restrict__ acc = buf.data();
        for (int64_t i = r0; i < r1; ++i) {
          std::fill(acc, acc + KF, acc_t(0));
          const int64_t s = rp[i], t = rp[i + 1];
          if (GM_BAD_ROW(s, t, E)) { bad = true; continue; }
          for (int64_t e = s; e < t; ++e) {
            const int64_t j = ci[e];
            if (j < 0 || j >= N) { bad = true; continue; }
            const scalar_t* __restrict__ xr = xp + j * KF;
            if (e + 1 < t) {
              const int64_t jn = ci[e + 1];
              if (jn >= 0 && jn < N) __builtin_prefetch(xp + jn * KF);
            }
            if (wk == 0) {
              for (int64_t q = 0; q < KF; ++q) acc[q] += static_cast<acc_t>(xr[q]);
            } else if (wk == 1) {
              const acc_t a = static_cast<acc_t>(wp[e]);
              for (int64_t q = 0; q < KF; ++q) acc[q] += a * static_cast<acc_t>(xr[q]);
            } else {
              for (int64_t k = 0; k < K; ++k) {
                const acc_t a = static_cast<acc_t>(wp[e * K + k]);
                const scalar_t* __restrict__ xk = xr + k * F;
                acc_t* __restrict__ ak = acc + k * F;
                for (int64_t f = 0; f < F; ++f) ak[f] += a * static_cast<acc_t>(xk[f]);
              }
            }
          }
          scalar_t* __restrict__ orow = op + i * KF;
          for (int64_t q = 0; q < KF; ++q) orow[q] = static_cast<scalar_t>(acc[q]);
        }
      });
    });
  });
  TORCH_CHECK_VALUE(!bad, "graphmutual.ops: malformed CSR (rowptr not monotone or col out of range)");
  return out;
}

template <typename scalar_t, typename acc_t>
inline acc_t dot(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t n) {
  acc_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t f = 0;
  for (; f + 8 <= n; f += 8)
    for (int l = 0; l < 8; ++l) s[l] += static_cast<acc_t>(a[f + l]) * static_cast<acc_t>(b[f + l]);
  acc_t r = 0;
  for (; f < n; ++f) r += static_cast<acc_t>(a[f]) * static_cast<acc_t>(b[f]);
  for (int l = 0; l < 8; ++l) r += s[l];
  return r;
}

// out[e, k] = <a[row(e), k, :], b[col[e], k, :]>  (summed over k when sum_k)
at::Tensor sddmm(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& a,
                 const at::Tensor& b, bool sum_k) {
  check_csr(rowptr, col);
  TORCH_CHECK_VALUE(a.dim() == 3 && b.dim() == 3 && a.is_contiguous() && b.is_contiguous(),
                    "a and b must be contiguous 3-D tensors");
  TORCH_CHECK_VALUE(a.size(1) == b.size(1) && a.size(2) == b.size(2), "a and b shapes differ");
  TORCH_CHECK_VALUE(a.scalar_type() == b.scalar_type(), "a and b dtypes differ");
  const int64_t M = rowptr.numel() - 1, E = col.numel();
  TORCH_CHECK_VALUE(a.size(0) == M, "a.size(0) must equal the number of CSR rows");
  const int64_t N = b.size(0), K = a.size(1), F = a.size(2), KF = K * F;
  auto out = at::empty({E, sum_k ? 1 : K}, a.options());
  std::atomic<bool> bad{false};
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_sddmm", [&] {
    const index_t* rp = rowptr.const_data_ptr<index_t>();
    const index_t* ci = col.const_data_ptr<index_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "graphmutual_sddmm", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* ap = a.const_data_ptr<scalar_t>();
      const scalar_t* bp = b.const_data_ptr<scalar_t>();
      scalar_t* op = out.data_ptr<scalar_t>();
      for_each_row_chunk(rp, M, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t s = rp[i], t = rp[i + 1];
          if (GM_BAD_ROW(s, t, E)) { bad = true; continue; }
          const scalar_t* ar = ap + i * KF;
          for (int64_t e = s; e < t; ++e) {
            const int64_t j = ci[e];
            if (j < 0 || j >= N) { bad = true; continue; }
            const scalar_t* br = bp + j * KF;
            if (sum_k) {
              op[e] = static_cast<scalar_t>(dot<scalar_t, acc_t>(ar, br, KF));
            } else {
              for (int64_t k = 0; k < K; ++k)
                op[e * K + k] = static_cast<scalar_t>(dot<scalar_t, acc_t>(ar + k * F, br + k * F, F));
            }
          }
        }
      });
    });
  });
  TORCH_CHECK_VALUE(!bad, "graphmutual.ops: malformed CSR (rowptr not monotone or col out of range)");
  return out;
}

// Segment reduction of src [E, D] over ptr [M + 1]. Empty segments give 0 and arg = E.
std::tuple<at::Tensor, at::Tensor> segment(const at::Tensor& src, const at::Tensor& ptr,
                                           int64_t reduce) {
  TORCH_CHECK_VALUE(ptr.dim() == 1 && ptr.numel() >= 1 && ptr.is_contiguous(), "bad ptr");
  TORCH_CHECK_VALUE(src.dim() == 2 && src.is_contiguous(), "src must be a contiguous [E, D] tensor");
  TORCH_CHECK_VALUE(reduce >= kSum && reduce <= kMin, "unknown reduce");
  const int64_t M = ptr.numel() - 1, E = src.size(0), D = src.size(1);
  auto out = at::empty({M, D}, src.options());
  const bool with_arg = reduce == kMax || reduce == kMin;
  auto arg = with_arg ? at::empty({M, D}, src.options().dtype(at::kLong))
                      : at::empty({0}, src.options().dtype(at::kLong));
  std::atomic<bool> bad{false};
  AT_DISPATCH_INDEX_TYPES(ptr.scalar_type(), "graphmutual_segment", [&] {
    const index_t* rp = ptr.const_data_ptr<index_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "graphmutual_segment", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* __restrict__ sp = src.const_data_ptr<scalar_t>();
      scalar_t* __restrict__ op = out.data_ptr<scalar_t>();
      int64_t* __restrict__ ap = with_arg ? arg.data_ptr<int64_t>() : nullptr;
      for_each_row_chunk(rp, M, [&](int64_t r0, int64_t r1) {
        std::vector<acc_t> buf(D);
        acc_t* __restrict__ acc = buf.data();
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t s = rp[i], t = rp[i + 1];
          scalar_t* __restrict__ orow = op + i * D;
          if (GM_BAD_ROW(s, t, E)) { bad = true; continue; }
          if (!with_arg) {
            std::fill(acc, acc + D, acc_t(0));
            for (int64_t e = s; e < t; ++e) {
              const scalar_t* __restrict__ r = sp + e * D;
              for (int64_t d = 0; d < D; ++d) acc[d] += static_cast<acc_t>(r[d]);
            }
            const acc_t scale = (reduce == kMean && t > s) ? acc_t(1) / acc_t(t - s) : acc_t(1);
            for (int64_t d = 0; d < D; ++d) orow[d] = static_cast<scalar_t>(acc[d] * scale);
          } else {
            int64_t* __restrict__ arow = ap + i * D;
            if (t == s) {
              for (int64_t d = 0; d < D; ++d) { orow[d] = scalar_t(0); arow[d] = E; }
              continue;
            }
            const scalar_t* __restrict__ r0p = sp + s * D;
            for (int64_t d = 0; d < D; ++d) { acc[d] = static_cast<acc_t>(r0p[d]); arow[d] = s; }
            for (int64_t e = s + 1; e < t; ++e) {
              const scalar_t* __restrict__ r = sp + e * D;
              if (reduce == kMax) {
                for (int64_t d = 0; d < D; ++d) {
                  const acc_t v = static_cast<acc_t>(r[d]);
                  if (v > acc[d] || (std::isnan(v) && !std::isnan(acc[d]))) { acc[d] = v; arow[d] = e; }
                }
              } else {
                for (int64_t d = 0; d < D; ++d) {
                  const acc_t v = static_cast<acc_t>(r[d]);
                  if (v < acc[d] || (std::isnan(v) && !std::isnan(acc[d]))) { acc[d] = v; arow[d] = e; }
                }
              }
            }
            for (int64_t d = 0; d < D; ++d) orow[d] = static_cast<scalar_t>(acc[d]);
          }
        }
      });
    });
  });
  TORCH_CHECK_VALUE(!bad, "graphmutual.ops: malformed ptr (not monotone or out of range)");
  return std::make_tuple(out, arg);
}

// Softmax of score [E, H] over the edges of each CSR row (per head).
at::Tensor edge_softmax(const at::Tensor& rowptr, const at::Tensor& score) {
  TORCH_CHECK_VALUE(rowptr.dim() == 1 && rowptr.numel() >= 1 && rowptr.is_contiguous(), "bad rowptr");
  TORCH_CHECK_VALUE(score.dim() == 2 && score.is_contiguous(), "score must be a contiguous [E, H] tensor");
  const int64_t M = rowptr.numel() - 1, E = score.size(0), H = score.size(1);
  auto out = at::empty_like(score);
  std::atomic<bool> bad{false};
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_edge_softmax", [&] {
    const index_t* rp = rowptr.const_data_ptr<index_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, score.scalar_type(), "graphmutual_edge_softmax", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* sp = score.const_data_ptr<scalar_t>();
      scalar_t* op = out.data_ptr<scalar_t>();
      for_each_row_chunk(rp, M, [&](int64_t r0, int64_t r1) {
        std::vector<acc_t> mx(H), sm(H);
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t s = rp[i], t = rp[i + 1];
          if (GM_BAD_ROW(s, t, E)) { bad = true; continue; }
          std::fill(mx.begin(), mx.end(), -std::numeric_limits<acc_t>::infinity());
          std::fill(sm.begin(), sm.end(), acc_t(0));
          for (int64_t e = s; e < t; ++e)
            for (int64_t h = 0; h < H; ++h) mx[h] = std::max(mx[h], static_cast<acc_t>(sp[e * H + h]));
          for (int64_t h = 0; h < H; ++h)  // rows of all -inf: avoid (-inf) - (-inf)
            if (std::isinf(mx[h]) && mx[h] < 0) mx[h] = 0;
          for (int64_t e = s; e < t; ++e)
            for (int64_t h = 0; h < H; ++h) {
              const acc_t v = std::exp(static_cast<acc_t>(sp[e * H + h]) - mx[h]);
              sm[h] += v;
              op[e * H + h] = static_cast<scalar_t>(v);
            }
          for (int64_t h = 0; h < H; ++h) sm[h] = sm[h] > 0 ? acc_t(1) / sm[h] : acc_t(0);
          for (int64_t e = s; e < t; ++e)
            for (int64_t h = 0; h < H; ++h)
              op[e * H + h] = static_cast<scalar_t>(static_cast<acc_t>(op[e * H + h]) * sm[h]);
        }
      });
    });
  });
  TORCH_CHECK_VALUE(!bad, "graphmutual.ops: malformed rowptr (not monotone or out of range)");
  return out;
}

// grad_score[e, h] = y[e, h] * (g[e, h] - sum_{e' in row} y[e', h] g[e', h])
at::Tensor edge_softmax_backward(const at::Tensor& rowptr, const at::Tensor& y, const at::Tensor& g) {
  TORCH_CHECK_VALUE(rowptr.dim() == 1 && rowptr.numel() >= 1 && rowptr.is_contiguous(), "bad rowptr");
  TORCH_CHECK_VALUE(y.dim() == 2 && y.sizes() == g.sizes() && y.is_contiguous() && g.is_contiguous(),
                    "y and grad must be contiguous [E, H] tensors of the same shape");
  const int64_t M = rowptr.numel() - 1, E = y.size(0), H = y.size(1);
  auto out = at::empty_like(y);
  std::atomic<bool> bad{false};
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_edge_softmax_bw", [&] {
    const index_t* rp = rowptr.const_data_ptr<index_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "graphmutual_edge_softmax_bw", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* yp = y.const_data_ptr<scalar_t>();
      const scalar_t* gp = g.const_data_ptr<scalar_t>();
      scalar_t* op = out.data_ptr<scalar_t>();
      for_each_row_chunk(rp, M, [&](int64_t r0, int64_t r1) {
        std::vector<acc_t> dt(H);
        for (int64_t i = r0; i < r1; ++i) {
          const int64_t s = rp[i], t = rp[i + 1];
          if (GM_BAD_ROW(s, t, E)) { bad = true; continue; }
          std::fill(dt.begin(), dt.end(), acc_t(0));
          for (int64_t e = s; e < t; ++e)
            for (int64_t h = 0; h < H; ++h)
              dt[h] += static_cast<acc_t>(yp[e * H + h]) * static_cast<acc_t>(gp[e * H + h]);
          for (int64_t e = s; e < t; ++e)
            for (int64_t h = 0; h < H; ++h)
              op[e * H + h] = static_cast<scalar_t>(static_cast<acc_t>(yp[e * H + h]) *
                                                    (static_cast<acc_t>(gp[e * H + h]) - dt[h]));
        }
      });
    });
  });
  TORCH_CHECK_VALUE(!bad, "graphmutual.ops: malformed rowptr (not monotone or out of range)");
  return out;
}

}  // namespace
}  // namespace graphmutual

TORCH_LIBRARY(graphmutual_cpu, m) {
  m.def("spmm(Tensor rowptr, Tensor col, Tensor? weight, Tensor x) -> Tensor");
  m.def("sddmm(Tensor rowptr, Tensor col, Tensor a, Tensor b, bool sum_k) -> Tensor");
  m.def("segment(Tensor src, Tensor ptr, int reduce) -> (Tensor, Tensor)");
  m.def("edge_softmax(Tensor rowptr, Tensor score) -> Tensor");
  m.def("edge_softmax_backward(Tensor rowptr, Tensor y, Tensor grad) -> Tensor");
}

TORCH_LIBRARY_IMPL(graphmutual_cpu, CPU, m) {
  m.impl("spmm", &graphmutual::spmm);
  m.impl("sddmm", &graphmutual::sddmm);
  m.impl("segment", &graphmutual::segment);
  m.impl("edge_softmax", &graphmutual::edge_softmax);
  m.impl("edge_softmax_backward", &graphmutual::edge_softmax_backward);
}
