// flax.linen layers with flax 0.12's defaults and initialisers.
#pragma once

#include <functional>
#include <memory>
#include <variant>

#include "flaxdrm/flax/module.hpp"

namespace flaxdrm::flax {

namespace init = initializers;

// dtype in every layer's options: Flax's `dtype=` (float32, float16 or
// kNoDtype for None), the dtype the layer computes in. Dense-like layers
// cast their input and float32 parameters to it (promote_dtype); the norms
// compute in float32 as Flax does and cast their result to it.
struct DenseOptions {
	bool use_bias = true;
	Initializer kernel_init = init::lecun_normal();
	Initializer bias_init = init::zeros();
	uint32_t dtype = kNoDtype;
};

// kernel (in, features) lecun_normal, bias (features,) zeros
class Dense : public ModuleT<Dense> {
public:
	explicit Dense(int64_t features, DenseOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_DENSE; }
	int64_t features() const { return attr<int64_t>("features"); }
	bool use_bias() const { return attr<bool>("use_bias"); }
	Value call(const Value& x) override;
};

// features and axis tuples; kernel x.shape[axis] + features, initialised
// on the flattened (prod(in), prod(features)) shape
class DenseGeneral : public ModuleT<DenseGeneral> {
public:
	explicit DenseGeneral(std::vector<int64_t> features, std::vector<int64_t> axis = {-1}, DenseOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_DENSE_GENERAL; }
	Value call(const Value& x) override;
};

struct ConvOptions {
	Shape strides;                // default 1 per spatial axis
	std::string padding = "SAME"; // SAME, VALID, CIRCULAR, CAUSAL (1-D)
	PadPairs explicit_padding;    // used when not empty
	Shape input_dilation;         // default 1
	Shape kernel_dilation;        // default 1
	int64_t feature_group_count = 1;
	bool use_bias = true;
	Initializer kernel_init = init::lecun_normal();
	Initializer bias_init = init::zeros();
	uint32_t dtype = kNoDtype;
};

// NHWC / NWC inputs (a missing batch axis is added), HWIO kernel
// kernel_size + (in / groups, features)
class Conv : public ModuleT<Conv> {
public:
	Conv(int64_t features, Shape kernel_size, ConvOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_CONV; }
	Value call(const Value& x) override;
};

// lax.conv_transpose (transpose_kernel=False): kernel kernel_size + (in, features)
class ConvTranspose : public ModuleT<ConvTranspose> {
public:
	ConvTranspose(int64_t features, Shape kernel_size, ConvOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_CONV_TRANSPOSE; }
	Value call(const Value& x) override;
};

struct NormOptions {
	double epsilon = 1e-6;
	bool use_bias = true;
	bool use_scale = true;
	Initializer scale_init = init::ones();
	Initializer bias_init = init::zeros();
	uint32_t dtype = kNoDtype;
};

class LayerNorm : public ModuleT<LayerNorm> {
public:
	explicit LayerNorm(NormOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_LAYER_NORM; }
	Value call(const Value& x) override;
};

class RMSNorm : public ModuleT<RMSNorm> {
public:
	explicit RMSNorm(NormOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_RMS_NORM; }
	Value call(const Value& x) override;
};

class GroupNorm : public ModuleT<GroupNorm> {
public:
	explicit GroupNorm(int64_t num_groups = 32, NormOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_GROUP_NORM; }
	Value call(const Value& x) override;
};

struct BatchNormOptions {
	bool use_running_average = false;
	double momentum = 0.99;
	double epsilon = 1e-5;
	bool use_bias = true;
	bool use_scale = true;
	Initializer scale_init = init::ones();
	Initializer bias_init = init::zeros();
	uint32_t dtype = kNoDtype;
};

// batch_stats/mean zeros, batch_stats/var ones; running stats updated in a
// training apply with batch_stats mutable, never under init
class BatchNorm : public ModuleT<BatchNorm> {
public:
	explicit BatchNorm(BatchNormOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_BATCH_NORM; }
	Value call(const Value& x) override;
};

// table (num_embeddings, features), variance_scaling(1, fan_in, normal,
// out_axis=0) = variance 1/features; call(int32 indices); attend(q)
class Embed : public ModuleT<Embed> {
public:
	Embed(int64_t num_embeddings, int64_t features, Initializer embedding_init = {}, uint32_t dtype = kNoDtype);
	uint32_t kind() const override { return FLAXDRM_KIND_EMBED; }
	Value call(const Value& x) override;
	Value attend(const Value& q);
	Value dispatch(const std::string& method, const std::vector<Value>& xs) override;
};

struct AttentionOptions {
	int64_t qkv_features = 0; // 0: inputs_q's features
	int64_t out_features = 0; // 0: inputs_q's features
	bool use_bias = true;
	bool causal = false;      // a causal mask (Flax: pass nn.make_causal_mask)
	double dropout_rate = 0.0;
	bool deterministic = true;
	Initializer kernel_init = init::lecun_normal();
	Initializer bias_init = init::zeros();
	uint32_t dtype = kNoDtype; // for the projections and the attention
};

// children query, key, value (DenseGeneral to (heads, head_dim)) and out;
// call(q), call({q, kv}), call({q, k, v}), call({q, k, v, mask (int32)})
class MultiHeadDotProductAttention : public ModuleT<MultiHeadDotProductAttention> {
public:
	explicit MultiHeadDotProductAttention(int64_t num_heads, AttentionOptions o = {});
	uint32_t kind() const override { return FLAXDRM_KIND_ATTENTION; }
	Value call_n(const std::vector<Value>& xs) override;
};
using MultiHeadAttention = MultiHeadDotProductAttention;

// rate 0 or deterministic: identity; else DROPOUT with a seed from the
// "dropout" rng stream
class Dropout : public ModuleT<Dropout> {
public:
	explicit Dropout(double rate, bool deterministic = false);
	uint32_t kind() const override { return FLAXDRM_KIND_DROPOUT; }
	Value call(const Value& x) override;
};

// nn.Sequential: children layers_0, layers_1, ...; functions count as positions
using Layer = std::variant<std::shared_ptr<Module>, std::function<Value(const Value&)>>;
template <class T, class... A> Layer layer(A&&... args)
{
	return std::shared_ptr<Module>(std::make_shared<T>(std::forward<A>(args)...));
}

class Sequential : public ModuleT<Sequential> {
public:
	explicit Sequential(std::vector<Layer> layers);
	Sequential(const Sequential& o);
	uint32_t kind() const override { return FLAXDRM_KIND_SEQUENTIAL; }
	Value call_n(const std::vector<Value>& xs) override;

protected:
	void setup() override;

private:
	std::vector<Layer> layers_;
	std::vector<Module*> bound_;
};

} // namespace flaxdrm::flax
