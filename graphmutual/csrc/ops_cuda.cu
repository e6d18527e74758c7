// graphmutual CUDA kernels: CSR aggregation without atomics.
//
// spmm:   warp per destination row; lanes walk the K*F feature columns, so the reads of a
//         source row x[col[e]] are coalesced. The warp loads 32 (col, weight) pairs at once
//         and broadcasts them with __shfl_sync. Each output row is written by one warp:
//         deterministic, no atomics.
// sddmm:  warp per edge, warp-shuffle reduction of the K dot products.
// segment / edge_softmax: one thread per (row, column), columns fastest (coalesced).
//
// Registered as torch.ops.graphmutual_cuda.*. The file deliberately includes no c10/cuda
// headers (CPU wheels of torch do not ship them, and we compile it in CI there): the Python
// caller passes the current CUDA stream as an integer and sets the current device.
// Inputs are validated in Python (graphmutual/ops/_validate.py); the kernels additionally
// skip out-of-range indices so that a malformed structure can never read out of bounds.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <cuda_runtime.h>

namespace graphmutual {
namespace {

constexpr int kWarp = 32;
constexpr int kVec = 4;  // feature columns per lane per pass: a warp covers 128 columns
constexpr int64_t kSum = 0, kMean = 1, kMax = 2, kMin = 3;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename scalar_t, typename index_t>
__global__ void spmm_kernel(const index_t* __restrict__ rowptr, const index_t* __restrict__ col,
                            const scalar_t* __restrict__ weight, int64_t wk,
                            const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int64_t M,
                            int64_t N, int64_t E, int64_t K, int64_t F) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t KF = K * F;
  const int lane = threadIdx.x % kWarp;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (row >= M) return;  // whole warp exits together
  int64_t s = rowptr[row], t = rowptr[row + 1];
  if (s < 0 || t < s || t > E) s = t = 0;
  for (int64_t q0 = 0; q0 < KF; q0 += kWarp * kVec) {
    acc_t acc[kVec];
#pragma unroll
    for (int v = 0; v < kVec; ++v) acc[v] = acc_t(0);
    for (int64_t e0 = s; e0 < t; e0 += kWarp) {
      const int64_t e_l = e0 + lane;
      int64_t j_l = -1;
      acc_t w_shared = acc_t(1);
      if (e_l < t) {
        j_l = col[e_l];
        if (wk == 1) w_shared = static_cast<acc_t>(weight[e_l]);
      }
      const int n = t - e0 < kWarp ? static_cast<int>(t - e0) : kWarp;
      for (int u = 0; u < n; ++u) {
        const int64_t j = __shfl_sync(0xffffffff, j_l, u);
        const acc_t w = __shfl_sync(0xffffffff, w_shared, u);
        if (j < 0 || j >= N) continue;  // uniform across the warp
        const scalar_t* __restrict__ xr = x + j * KF;
#pragma unroll
        for (int v = 0; v < kVec; ++v) {
          const int64_t q = q0 + v * kWarp + lane;
          if (q < KF) {
            acc_t a = w;
            if (wk > 1) a = static_cast<acc_t>(weight[(e0 + u) * K + q / F]);
            acc[v] += a * static_cast<acc_t>(xr[q]);
          }
        }
      }
    }
#pragma unroll
    for (int v = 0; v < kVec; ++v) {
      const int64_t q = q0 + v * kWarp + lane;
      if (q < KF) out[row * KF + q] = static_cast<scalar_t>(acc[v]);
    }
  }
}

template <typename scalar_t, typename index_t>
__global__ void sddmm_kernel(const index_t* __restrict__ rowptr, const index_t* __restrict__ col,
                             const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                             scalar_t* __restrict__ out, int64_t M, int64_t N, int64_t E,
                             int64_t K, int64_t F, bool sum_k) {
  using acc_t = at::opmath_type<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t e = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (e >= E) return;
  // destination row of edge e: binary search in rowptr (last r with rowptr[r] <= e)
  int64_t lo = 0, hi = M;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (rowptr[mid] <= e) lo = mid; else hi = mid - 1;
  }
  const int64_t i = lo, j = col[e];
  const bool ok = i < M && j >= 0 && j < N;
  acc_t total = acc_t(0);
  for (int64_t k = 0; k < K; ++k) {
    acc_t part = acc_t(0);
    if (ok)
      for (int64_t f = lane; f < F; f += kWarp)
        part += static_cast<acc_t>(a[(i * K + k) * F + f]) * static_cast<acc_t>(b[(j * K + k) * F + f]);
    for (int off = kWarp / 2; off > 0; off /= 2) part += __shfl_xor_sync(0xffffffff, part, off);
    if (sum_k) total += part;
    else if (lane == 0) out[e * K + k] = static_cast<scalar_t>(part);
  }
  if (sum_k && lane == 0) out[e] = static_cast<scalar_t>(total);
}

template <typename scalar_t, typename index_t>
__global__ void segment_kernel(const scalar_t* __restrict__ src, const index_t* __restrict__ ptr,
                               scalar_t* __restrict__ out, int64_t* __restrict__ arg, int64_t M,
                               int64_t E, int64_t D, int64_t reduce) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tid >= M * D) return;
  const int64_t i = tid / D, d = tid % D;
  int64_t s = ptr[i], t = ptr[i + 1];
  if (s < 0 || t < s || t > E) s = t = 0;
  if (reduce == kSum || reduce == kMean) {
    acc_t acc = acc_t(0);
    for (int64_t e = s; e < t; ++e) acc += static_cast<acc_t>(src[e * D + d]);
    if (reduce == kMean && t > s) acc /= static_cast<acc_t>(t - s);
    out[tid] = static_cast<scalar_t>(acc);
    return;
  }
  if (t == s) { out[tid] = scalar_t(0); arg[tid] = E; return; }
  acc_t best = static_cast<acc_t>(src[s * D + d]);
  int64_t best_e = s;
  for (int64_t e = s + 1; e < t; ++e) {
    const acc_t v = static_cast<acc_t>(src[e * D + d]);
    const bool better = reduce == kMax ? v > best : v < best;
    if (better || (isnan(v) && !isnan(best))) { best = v; best_e = e; }
  }
  out[tid] = static_cast<scalar_t>(best);
  arg[tid] = best_e;
}

template <typename scalar_t, typename index_t>
__global__ void edge_softmax_kernel(const index_t* __restrict__ rowptr,
                                    const scalar_t* __restrict__ score, scalar_t* __restrict__ out,
                                    int64_t M, int64_t E, int64_t H) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tid >= M * H) return;
  const int64_t i = tid / H, h = tid % H;
  int64_t s = rowptr[i], t = rowptr[i + 1];
  if (s < 0 || t < s || t > E) return;
  acc_t mx = -INFINITY;
  for (int64_t e = s; e < t; ++e) mx = max(mx, static_cast<acc_t>(score[e * H + h]));
  if (isinf(mx) && mx < 0) mx = acc_t(0);
  acc_t sum = acc_t(0);
  for (int64_t e = s; e < t; ++e) sum += exp(static_cast<acc_t>(score[e * H + h]) - mx);
  const acc_t inv = sum > 0 ? acc_t(1) / sum : acc_t(0);
  for (int64_t e = s; e < t; ++e)
    out[e * H + h] = static_cast<scalar_t>(exp(static_cast<acc_t>(score[e * H + h]) - mx) * inv);
}

template <typename scalar_t, typename index_t>
__global__ void edge_softmax_bw_kernel(const index_t* __restrict__ rowptr,
                                       const scalar_t* __restrict__ y, const scalar_t* __restrict__ g,
                                       scalar_t* __restrict__ out, int64_t M, int64_t E, int64_t H) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tid >= M * H) return;
  const int64_t i = tid / H, h = tid % H;
  int64_t s = rowptr[i], t = rowptr[i + 1];
  if (s < 0 || t < s || t > E) return;
  acc_t dt = acc_t(0);
  for (int64_t e = s; e < t; ++e)
    dt += static_cast<acc_t>(y[e * H + h]) * static_cast<acc_t>(g[e * H + h]);
  for (int64_t e = s; e < t; ++e)
    out[e * H + h] = static_cast<scalar_t>(static_cast<acc_t>(y[e * H + h]) *
                                           (static_cast<acc_t>(g[e * H + h]) - dt));
}

void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.is_cuda() && t.is_contiguous(), name, " must be a contiguous CUDA tensor");
}

constexpr int kThreads = 256;

void check_launch() {
  const cudaError_t err = cudaGetLastError();
  TORCH_CHECK(err == cudaSuccess, "graphmutual CUDA kernel launch failed: ", cudaGetErrorString(err));
}

at::Tensor spmm(const at::Tensor& rowptr, const at::Tensor& col,
                const c10::optional<at::Tensor>& weight_opt, const at::Tensor& x,
                int64_t stream_ptr) {
  check_cuda(rowptr, "rowptr"); check_cuda(col, "col"); check_cuda(x, "x");
  TORCH_CHECK_VALUE(rowptr.scalar_type() == col.scalar_type(), "rowptr/col dtypes differ");
  TORCH_CHECK_VALUE(x.dim() == 3, "x must be [N, K, F]");
  const int64_t M = rowptr.numel() - 1, E = col.numel(), N = x.size(0), K = x.size(1), F = x.size(2);
  at::Tensor weight;
  int64_t wk = 0;
  if (weight_opt.has_value() && weight_opt->defined()) {
    weight = *weight_opt;
    check_cuda(weight, "weight");
    TORCH_CHECK_VALUE(weight.dim() == 2 && weight.size(0) == E && (weight.size(1) == 1 || weight.size(1) == K),
                      "weight must be [E, 1] or [E, K]");
    TORCH_CHECK_VALUE(weight.scalar_type() == x.scalar_type(), "weight and x dtypes differ");
    wk = weight.size(1);
  }
  auto out = at::empty({M, K, F}, x.options());
  if (M == 0 || K * F == 0) return out;
  const auto stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const int64_t blocks = ceil_div(M * kWarp, kThreads);
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_spmm_cuda", [&] {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "graphmutual_spmm_cuda", [&] {
      spmm_kernel<scalar_t, index_t><<<blocks, kThreads, 0, stream>>>(
          rowptr.const_data_ptr<index_t>(), col.const_data_ptr<index_t>(),
          wk ? weight.const_data_ptr<scalar_t>() : nullptr, wk, x.const_data_ptr<scalar_t>(),
          out.data_ptr<scalar_t>(), M, N, E, K, F);
    });
  });
  check_launch();
  return out;
}

at::Tensor sddmm(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& a,
                 const at::Tensor& b, bool sum_k, int64_t stream_ptr) {
  check_cuda(rowptr, "rowptr"); check_cuda(col, "col"); check_cuda(a, "a"); check_cuda(b, "b");
  TORCH_CHECK_VALUE(a.dim() == 3 && b.dim() == 3 && a.size(1) == b.size(1) && a.size(2) == b.size(2),
                    "a and b must be [M, K, F] and [N, K, F]");
  const int64_t M = rowptr.numel() - 1, E = col.numel(), N = b.size(0), K = a.size(1), F = a.size(2);
  auto out = at::empty({E, sum_k ? 1 : K}, a.options());
  if (E == 0) return out;
  const auto stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const int64_t blocks = ceil_div(E * kWarp, kThreads);
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_sddmm_cuda", [&] {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "graphmutual_sddmm_cuda", [&] {
      sddmm_kernel<scalar_t, index_t><<<blocks, kThreads, 0, stream>>>(
          rowptr.const_data_ptr<index_t>(), col.const_data_ptr<index_t>(), a.const_data_ptr<scalar_t>(),
          b.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), M, N, E, K, F, sum_k);
    });
  });
  check_launch();
  return out;
}

std::tuple<at::Tensor, at::Tensor> segment(const at::Tensor& src, const at::Tensor& ptr, int64_t reduce,
                                           int64_t stream_ptr) {
  check_cuda(src, "src"); check_cuda(ptr, "ptr");
  TORCH_CHECK_VALUE(src.dim() == 2, "src must be [E, D]");
  const int64_t M = ptr.numel() - 1, E = src.size(0), D = src.size(1);
  auto out = at::empty({M, D}, src.options());
  const bool with_arg = reduce == kMax || reduce == kMin;
  auto arg = with_arg ? at::empty({M, D}, src.options().dtype(at::kLong))
                      : at::empty({0}, src.options().dtype(at::kLong));
  if (M * D == 0) return std::make_tuple(out, arg);
  const auto stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  AT_DISPATCH_INDEX_TYPES(ptr.scalar_type(), "graphmutual_segment_cuda", [&] {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "graphmutual_segment_cuda", [&] {
      segment_kernel<scalar_t, index_t><<<ceil_div(M * D, kThreads), kThreads, 0, stream>>>(
          src.const_data_ptr<scalar_t>(), ptr.const_data_ptr<index_t>(), out.data_ptr<scalar_t>(),
          with_arg ? arg.data_ptr<int64_t>() : nullptr, M, E, D, reduce);
    });
  });
  check_launch();
  return std::make_tuple(out, arg);
}

at::Tensor edge_softmax(const at::Tensor& rowptr, const at::Tensor& score, int64_t stream_ptr) {
  check_cuda(rowptr, "rowptr"); check_cuda(score, "score");
  const int64_t M = rowptr.numel() - 1, E = score.size(0), H = score.size(1);
  auto out = at::zeros_like(score);
  if (M * H == 0) return out;
  const auto stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_edge_softmax_cuda", [&] {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, score.scalar_type(), "graphmutual_edge_softmax_cuda", [&] {
      edge_softmax_kernel<scalar_t, index_t><<<ceil_div(M * H, kThreads), kThreads, 0, stream>>>(
          rowptr.const_data_ptr<index_t>(), score.const_data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), M, E, H);
    });
  });
  check_launch();
  return out;
}

at::Tensor edge_softmax_backward(const at::Tensor& rowptr, const at::Tensor& y, const at::Tensor& g,
                                 int64_t stream_ptr) {
  check_cuda(rowptr, "rowptr"); check_cuda(y, "y"); check_cuda(g, "grad");
  TORCH_CHECK_VALUE(y.sizes() == g.sizes() && y.dim() == 2, "y and grad must be [E, H]");
  const int64_t M = rowptr.numel() - 1, E = y.size(0), H = y.size(1);
  auto out = at::zeros_like(y);
  if (M * H == 0) return out;
  const auto stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  AT_DISPATCH_INDEX_TYPES(rowptr.scalar_type(), "graphmutual_edge_softmax_bw_cuda", [&] {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "graphmutual_edge_softmax_bw_cuda", [&] {
      edge_softmax_bw_kernel<scalar_t, index_t><<<ceil_div(M * H, kThreads), kThreads, 0, stream>>>(
          rowptr.const_data_ptr<index_t>(), y.const_data_ptr<scalar_t>(), g.const_data_ptr<scalar_t>(),
          out.data_ptr<scalar_t>(), M, E, H);
    });
  });
  check_launch();
  return out;
}

}  // namespace
}  // namespace graphmutual

TORCH_LIBRARY(graphmutual_cuda, m) {
  m.def("spmm(Tensor rowptr, Tensor col, Tensor? weight, Tensor x, int stream) -> Tensor");
  m.def("sddmm(Tensor rowptr, Tensor col, Tensor a, Tensor b, bool sum_k, int stream) -> Tensor");
  m.def("segment(Tensor src, Tensor ptr, int reduce, int stream) -> (Tensor, Tensor)");
  m.def("edge_softmax(Tensor rowptr, Tensor score, int stream) -> Tensor");
  m.def("edge_softmax_backward(Tensor rowptr, Tensor y, Tensor grad, int stream) -> Tensor");
}

TORCH_LIBRARY_IMPL(graphmutual_cuda, CUDA, m) {
  m.impl("spmm", &graphmutual::spmm);
  m.impl("sddmm", &graphmutual::sddmm);
  m.impl("segment", &graphmutual::segment);
  m.impl("edge_softmax", &graphmutual::edge_softmax);
  m.impl("edge_softmax_backward", &graphmutual::edge_softmax_backward);
}
