// The ops and primitives of decoder_layer.h.
#include "decoder_layer.h"

#include <atomic>
#include <cstring>
#include <stdexcept>

#include "array_utils.h"
#include "attention.h"
#include "half.h"
#include "mlx/backend/cpu/encoder.h"
#include "norm_rope.h"
#include "vector_math.h"

namespace osaurus {

namespace {

// Checks one of the layer's weights: a quantized matrix of `rows` x `cols` (0: any).
void check_weight(
    const char* op, const char* name, const QuantizedWeight& weight, int64_t rows, int64_t cols) {
  const auto& [w, scales, biases, group_size, bits] = weight;
  const auto [r, c] = check_quantized_weights(op, w, scales, biases, group_size, bits);
  if ((rows && r != rows) || (cols && c != cols))
    fail(op, name, " is a ", r, " x ", c, " matrix, expected ", rows ? std::to_string(rows) : "any",
         " x ", cols ? std::to_string(cols) : "any");
}

void check_norm_weight(const char* op, const mx::array& weight, int64_t D) {
  if (weight.dtype() != mx::float32 || weight.ndim() != 1 || weight.shape(0) != D)
    fail(op, "the norm weight must be float32 of shape (", D, ",), got ", weight.dtype(), " ",
         shape_of(weight));
}

std::vector<mx::array> weak_copies(const std::vector<mx::array>& arrays) {
  std::vector<mx::array> copies;
  copies.reserve(arrays.size());
  for (const auto& a : arrays) copies.push_back(mx::array::unsafe_weak_copy(a));
  return copies;
}

const float* floats(const Contiguous& c) { return reinterpret_cast<const float*>(c.data); }

std::atomic<int64_t> kv_copies{0};

void check_cache_buffer(const char* op, const char* name, const mx::array& buffer, int B,
                        int n_kv_heads, int head_dim, mx::Dtype kv_dtype) {
  if (buffer.ndim() != 4 || buffer.shape(0) != B || buffer.shape(1) != n_kv_heads ||
      buffer.shape(3) != head_dim || buffer.dtype() != kv_dtype)
    fail(op, name, " must be ", kv_dtype, " of shape (", B, ", ", n_kv_heads, ", positions, ",
         head_dim, "), got ", buffer.dtype(), " ", shape_of(buffer));
}

// A multi-output primitive's outputs each hold their own copy of its inputs
// (array::make_arrays), so none of its inputs is ever donatable as it stands, and the KV cache
// buffers would be copied on every step. MLX drops those copies right after this eval
// (array::detach); dropping the other outputs' copies of inputs[first:] now lets
// is_donatable() say whether anything else (a prompt-cache snapshot, a view) holds them.
void release_sibling_inputs(const std::vector<mx::array>& inputs,
                            std::vector<mx::array>& outputs, size_t first) {
  if (outputs[0].is_tracer()) return;  // a transform (compile, grad) keeps the graph
  for (auto& o : outputs)
    if (auto& theirs = o.inputs(); &theirs != &inputs && theirs.size() > first)
      theirs.erase(theirs.begin() + first, theirs.end());
}

// dst (row contiguous) = src, any strides, elements of `size` bytes.
void copy_strided(const mx::array& src, mx::array& dst) {
  const int64_t size = src.itemsize(), n = src.shape(3);
  const auto& st = src.strides();
  const char* from = src.data<char>();
  char* to = dst.data<char>();
  for (int64_t b = 0; b < src.shape(0); ++b)
    for (int64_t h = 0; h < src.shape(1); ++h)
      for (int64_t t = 0; t < src.shape(2); ++t, to += n * size) {
        const char* row = from + (b * st[0] + h * st[1] + t * st[2]) * size;
        if (st[3] == 1) {
          std::memcpy(to, row, n * size);
          continue;
        }
        for (int64_t i = 0; i < n; ++i) std::memcpy(to + i * size, row + i * st[3] * size, size);
      }
}

}  // namespace

std::vector<mx::array> attention_inputs(
    const mx::array& x, const mx::array& norm_weight, float eps, const QuantizedWeight& qkv,
    int n_heads, int n_kv_heads, int head_dim, int rope_dims, bool traditional,
    std::optional<float> base, float rope_scale, const mx::array& offset,
    const std::optional<mx::array>& freqs, const std::string& kernel, mx::Dtype kv_dtype,
    const std::optional<mx::array>& cache_keys, const std::optional<mx::array>& cache_values,
    int write_pos, mx::StreamOrDevice s) {
  const char* op = "attention_inputs";
  const auto choice = parse_kernel(kernel);
  if (x.ndim() != 3 || x.dtype() != mx::float32)
    fail(op, "x must be float32 of shape (batch, positions, dims), got ", x.dtype(), " ",
         shape_of(x));
  const int B = x.shape(0), L = x.shape(1), D = x.shape(2);
  if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || head_dim <= 0)
    fail(op, "n_heads (", n_heads, ") must be a positive multiple of n_kv_heads (", n_kv_heads,
         ") and head_dim (", head_dim, ") positive");
  check_norm_weight(op, norm_weight, D);
  check_weight(op, "qkv", qkv, int64_t(n_heads + 2 * n_kv_heads) * head_dim, D);
  if (rope_dims <= 0 || rope_dims % 2 != 0 || rope_dims > head_dim)
    fail(op, "rope_dims must be even and between 2 and head_dim (", head_dim, "), got ",
         rope_dims);
  if (!mx::issubdtype(offset.dtype(), mx::integer) || offset.ndim() > 1 ||
      (offset.size() != 1 && offset.size() != size_t(B)))
    fail(op, "offset must be an integer or integers, one per batch row (", B, "), got dtype ",
         offset.dtype(), " and shape ", shape_of(offset));
  if (freqs.has_value() == base.has_value()) fail(op, "give exactly one of base and freqs");
  if (freqs && (freqs->ndim() != 1 || freqs->shape(0) != rope_dims / 2))
    fail(op, "freqs must have shape (", rope_dims / 2, ",), got ", shape_of(*freqs));
  if (kv_dtype != mx::float32 && kv_dtype != mx::float16)
    fail(op, "kv_dtype must be float32 or float16, got ", kv_dtype);
  if (cache_keys.has_value() != cache_values.has_value())
    fail(op, "give both cache_keys and cache_values, or neither");
  int capacity = 0;
  if (cache_keys) {
    check_cache_buffer(op, "cache_keys", *cache_keys, B, n_kv_heads, head_dim, kv_dtype);
    check_cache_buffer(op, "cache_values", *cache_values, B, n_kv_heads, head_dim, kv_dtype);
    capacity = cache_keys->shape(2);
    if (cache_values->shape(2) != capacity)
      fail(op, "cache_keys and cache_values must hold as many positions, got ", capacity,
           " and ", cache_values->shape(2));
    if (write_pos < 0 || write_pos + L > capacity)
      fail(op, "write_pos (", write_pos, ") and the ", L, " new positions must fit the ",
           capacity, " of the cache buffers");
  }

  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) fail(op, "runs on the CPU only");
  const auto& [w, scales, biases, group_size, bits] = qkv;
  std::vector<mx::array> inputs{x, norm_weight, w, scales, biases,
                                mx::astype(offset, mx::int32, stream)};
  if (freqs) inputs.push_back(mx::astype(*freqs, mx::float32, stream));
  if (cache_keys) {  // last, where eval_cpu looks for them
    inputs.push_back(*cache_keys);
    inputs.push_back(*cache_values);
  }
  const AttentionInputs::Params p{eps, n_heads, n_kv_heads, head_dim, rope_dims, traditional,
                                  base.value_or(1.0f), rope_scale, group_size, bits, choice,
                                  kv_dtype == mx::float16, capacity, write_pos};
  const int T = capacity ? capacity : L;
  return mx::array::make_arrays(
      {{B, n_heads, L, head_dim}, {B, n_kv_heads, T, head_dim}, {B, n_kv_heads, T, head_dim}},
      {mx::float32, kv_dtype, kv_dtype}, std::make_shared<AttentionInputs>(stream, p),
      std::move(inputs));
}

mx::array attention_output_mlp(
    const mx::array& x, const mx::array& q, const mx::array& k, const mx::array& v, float scale,
    bool causal, const std::optional<mx::array>& mask, const QuantizedWeight& o,
    const mx::array& norm_weight, float eps, const QuantizedWeight& gate_up,
    const QuantizedWeight& down, const std::string& kernel, int kv_length,
    mx::StreamOrDevice s) {
  const char* op = "attention_output_mlp";
  const auto choice = parse_kernel(kernel);
  if (x.ndim() != 3 || x.dtype() != mx::float32)
    fail(op, "x must be float32 of shape (batch, positions, dims), got ", x.dtype(), " ",
         shape_of(x));
  const int B = x.shape(0), L = x.shape(1), D = x.shape(2);
  if (q.ndim() != 4 || k.ndim() != 4 || v.ndim() != 4)
    fail(op, "q, k and v must be 4-D, got ", shape_of(q), ", ", shape_of(k), " and ",
         shape_of(v));
  check_attention_dtypes(op, q, k, v);
  const int H = q.shape(1), Hkv = k.shape(1), S = k.shape(2), Dv = v.shape(3);
  if (q.shape(0) != B || q.shape(2) != L || k.shape(0) != B || v.shape(0) != B ||
      v.shape(1) != Hkv || v.shape(2) != S || k.shape(3) != q.shape(3) || Hkv == 0 ||
      H % Hkv != 0)
    fail(op, "q ", shape_of(q), ", k ", shape_of(k), " and v ", shape_of(v),
         " do not fit x ", shape_of(x));
  if (causal && mask) fail(op, "give a mask or causal, not both");
  if (kv_length < 0 || kv_length > S || (kv_length && kv_length < L))
    fail(op, "kv_length (", kv_length, ") must be 0 (all) or between the ", L,
         " positions of x and the ", S, " of k and v");
  const int keys = kv_length ? kv_length : S;
  check_weight(op, "o", o, D, int64_t(H) * Dv);
  check_norm_weight(op, norm_weight, D);
  check_weight(op, "gate_up", gate_up, 0, D);
  const int64_t I2 = std::get<0>(gate_up).shape(0);
  if (I2 % 2 != 0) fail(op, "gate_up must stack two projections of one size, got ", I2, " rows");
  check_weight(op, "down", down, D, I2 / 2);

  auto stream = mx::to_stream(s);
  if (stream.device != mx::Device::cpu) fail(op, "runs on the CPU only");
  std::vector<mx::array> inputs{x, q, k, v};
  for (const auto* weight : {&o, &gate_up, &down}) {
    inputs.push_back(std::get<0>(*weight));
    inputs.push_back(std::get<1>(*weight));
    inputs.push_back(std::get<2>(*weight));
    if (weight == &o) inputs.push_back(norm_weight);
  }
  if (mask) inputs.push_back(attention_mask_input(op, *mask, B, H, L, keys, stream));
  const AttentionOutputMlp::Params p{
      scale, causal, mask.has_value(), eps,
      std::get<3>(o), std::get<4>(o), std::get<3>(gate_up), std::get<4>(gate_up),
      std::get<3>(down), std::get<4>(down), choice, kv_length};
  return mx::array(x.shape(), mx::float32, std::make_shared<AttentionOutputMlp>(stream, p),
                   std::move(inputs));
}

// Inputs: x, norm weight, qkv (w, scales, biases), offset, [freqs], [cache keys, values].
void AttentionInputs::eval_cpu(
    const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  outputs[0].set_data(mx::allocator::malloc(outputs[0].nbytes()));
  const size_t buffers = inputs.size() - 2;  // where the cache buffers are, if given
  bool copy[2] = {false, false};
  if (p_.capacity) release_sibling_inputs(inputs, outputs, buffers);
  for (int i = 0; i < 2; ++i) {
    mx::array& o = outputs[1 + i];
    if (!p_.capacity) {
      o.set_data(mx::allocator::malloc(o.nbytes()));
    } else if (const auto& buffer = inputs[buffers + i];
               buffer.is_donatable() && buffer.flags().row_contiguous) {
      o.copy_shared_buffer(buffer);
    } else {
      o.set_data(mx::allocator::malloc(o.nbytes()));
      copy[i] = true;
      ++kv_copies;
    }
  }
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  for (auto& o : outputs) encoder.set_output_array(o);
  encoder.dispatch([in = weak_copies(inputs), out = weak_copies(outputs), p = p_, buffers,
                    copy_keys = copy[0], copy_values = copy[1]]() mutable {
    if (copy_keys) copy_strided(in[buffers], out[1]);
    if (copy_values) copy_strided(in[buffers + 1], out[2]);
    const mx::array& x = in[0];
    const int64_t B = x.shape(0), L = x.shape(1), D = x.shape(2), M = B * L;
    const int64_t H = p.n_heads, Hkv = p.n_kv_heads, Dh = p.head_dim, N = (H + 2 * Hkv) * Dh;
    // k and v: (B, Hkv, T, Dh), the new positions from `first` (a cache buffer's write_pos)
    const int64_t T = p.capacity ? p.capacity : L, first = p.capacity ? p.write_pos : 0;
    const Contiguous cx(x), cw(in[1]), coffset(in[5]);
    thread_local std::vector<float> normed_reused, qkv_reused, rotated_reused;
    const Scratch<float> normed(normed_reused, M * D), qkv(qkv_reused, M * N);
    rms_norm_rows(floats(cx), floats(cw), normed.data(), 0, M, D, p.eps);
    const QuantizedOperand W(in[2], in[3], in[4], p.group_size, p.bits);
    matmul_rows(normed.data(), M, W.matrix, p.kernel, qkv.data());

    std::optional<Contiguous> cfreqs;
    if (in.size() == (p.capacity ? 9u : 7u)) cfreqs.emplace(in[6]);
    const int64_t n_offsets = in[5].size();
    const RotaryTable table(reinterpret_cast<const int32_t*>(coffset.data), n_offsets, L,
                            p.rope_dims / 2, p.base, p.rope_scale,
                            cfreqs ? floats(*cfreqs) : nullptr);
    float* q = out[0].data<float>();
    const Scratch<float> rotated(rotated_reused, Dh);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l) {
        const float* row = qkv.data() + (b * L + l) * N;
        const int64_t o = n_offsets > 1 ? b : 0;
        const float *c = table.cos_at(o, l), *s = table.sin_at(o, l);
        for (int64_t h = 0; h < H; ++h)
          rotate_row(row + h * Dh, c, s, Dh, p.rope_dims, p.traditional,
                     q + ((b * H + h) * L + l) * Dh);
        for (int64_t h = 0; h < Hkv; ++h) {
          const int64_t at = ((b * Hkv + h) * T + first + l) * Dh;
          const float* value = row + (H + Hkv + h) * Dh;
          if (!p.kv_half) {
            rotate_row(row + (H + h) * Dh, c, s, Dh, p.rope_dims, p.traditional,
                       out[1].data<float>() + at);
            std::memcpy(out[2].data<float>() + at, value, Dh * sizeof(float));
            continue;
          }
          // A float16 KV cache: rounded as mx.astype(k, mx.float16) rounds.
          rotate_row(row + (H + h) * Dh, c, s, Dh, p.rope_dims, p.traditional, rotated.data());
          uint16_t *k = out[1].data<uint16_t>() + at, *v = out[2].data<uint16_t>() + at;
          for (int64_t i = 0; i < Dh; ++i) {
            k[i] = float_to_f16(rotated[i]);
            v[i] = float_to_f16(value[i]);
          }
        }
      }
  });
}

// Inputs: x, q, k, v, o (w, scales, biases), norm weight, gate_up (w, scales, biases),
// down (w, scales, biases), [mask].
void AttentionOutputMlp::eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (const auto& a : inputs) encoder.set_input_array(a);
  encoder.set_output_array(out);
  encoder.dispatch([in = weak_copies(inputs), out = mx::array::unsafe_weak_copy(out),
                    p = p_]() mutable {
    const mx::array &x = in[0], &q = in[1], &k = in[2], &v = in[3];
    const int64_t B = x.shape(0), L = x.shape(1), D = x.shape(2), M = B * L;
    const int64_t H = q.shape(1), Dv = v.shape(3);
    thread_local std::vector<float> attended_reused, h_reused, normed_reused, gate_up_reused,
        act_reused;
    const Scratch<float> attended(attended_reused, M * H * Dv), h(h_reused, M * D),
        normed(normed_reused, M * D);
    attention_into(q, k, v, p.has_mask ? &in[14] : nullptr, p.scale, p.causal, true,
                   attended.data(), p.kv_length);

    const Contiguous cx(x), cnorm(in[7]);
    const QuantizedOperand Wo(in[4], in[5], in[6], p.o_group_size, p.o_bits);
    matmul_rows(attended.data(), M, Wo.matrix, p.kernel, h.data());
    const float* xs = floats(cx);
    for (int64_t i = 0; i < M * D; ++i) h[i] = xs[i] + h[i];
    rms_norm_rows(h.data(), floats(cnorm), normed.data(), 0, M, D, p.eps);

    const QuantizedOperand Wgu(in[8], in[9], in[10], p.gate_up_group_size, p.gate_up_bits);
    const int64_t I = Wgu.matrix.rows / 2;
    const Scratch<float> gate_up(gate_up_reused, M * 2 * I), act(act_reused, M * I);
    matmul_rows(normed.data(), M, Wgu.matrix, p.kernel, gate_up.data());
    for (int64_t m = 0; m < M; ++m)
      swiglu(gate_up.data() + m * 2 * I, gate_up.data() + m * 2 * I + I, act.data() + m * I, I);

    const QuantizedOperand Wdown(in[11], in[12], in[13], p.down_group_size, p.down_bits);
    float* o = out.data<float>();
    matmul_rows(act.data(), M, Wdown.matrix, p.kernel, o);
    for (int64_t i = 0; i < M * D; ++i) o[i] = h[i] + o[i];
  });
}

void AttentionInputs::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("OsaurusAttentionInputs runs on the CPU only");
}

void AttentionOutputMlp::eval_gpu(const std::vector<mx::array>&, mx::array&) {
  throw std::runtime_error("OsaurusAttentionOutputMlp runs on the CPU only");
}

bool AttentionInputs::is_equivalent(const mx::Primitive& other) const {
  return p_ == static_cast<const AttentionInputs&>(other).p_;
}

bool AttentionOutputMlp::is_equivalent(const mx::Primitive& other) const {
  return p_ == static_cast<const AttentionOutputMlp&>(other).p_;
}

std::vector<mx::Shape> AttentionInputs::output_shapes(const std::vector<mx::array>& inputs) {
  const int B = inputs[0].shape(0), L = inputs[0].shape(1), T = p_.capacity ? p_.capacity : L;
  return {{B, p_.n_heads, L, p_.head_dim},
          {B, p_.n_kv_heads, T, p_.head_dim},
          {B, p_.n_kv_heads, T, p_.head_dim}};
}

int64_t kv_cache_copies() { return kv_copies.load(); }

}  // namespace osaurus
