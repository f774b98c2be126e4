// Scaled dot-product attention, q/k/v/mask read through uniform texel
// buffers (CPU devices: vector gathers on lavapipe): see attention.glsl.
// q, k, v are RGBA32F views when VEC, R32F views otherwise; the mask R32I.
// F16: q, k, v are RGBA16F / R16F views (texelFetch returns f32, so the
// reads are the same code) and only the output is f16.
// variant: attention_texel_f16 F16=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

layout(set = 0, binding = 0) uniform samplerBuffer qt;
layout(set = 0, binding = 1) uniform samplerBuffer kt;
layout(set = 0, binding = 2) uniform samplerBuffer vt;
layout(set = 0, binding = 3) uniform isamplerBuffer mt;

#define LOADQ(i) texelFetch(qt, int(i)).x
#define LOADK(i) texelFetch(kt, int(i)).x
#define LOADV(i) texelFetch(vt, int(i)).x
#define LOADQ4(i) texelFetch(qt, int(i))
#define LOADK4(i) texelFetch(kt, int(i))
#define LOADV4(i) texelFetch(vt, int(i))
#define LOADMASK(i) texelFetch(mt, int(i)).x
#include "attention.glsl"
