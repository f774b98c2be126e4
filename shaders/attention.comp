// Scaled dot-product attention, storage-buffer reads (any device): see
// attention.glsl. The vec4 views alias the float ones (VEC only); under F16
// they are float16_t / f16vec4 (8 bytes) and every load converts to f32.
// variant: attention_f16 F16=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define IN_T float16_t
#define IN_T4 f16vec4
#else
#define IN_T float
#define IN_T4 vec4
#endif

layout(set = 0, binding = 0, std430) readonly restrict buffer BufQ { IN_T qs[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufK { IN_T ks[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufV { IN_T vs[]; };
layout(set = 0, binding = 0, std430) readonly restrict buffer BufQ4 { IN_T4 qs4[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufK4 { IN_T4 ks4[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufV4 { IN_T4 vs4[]; };
layout(set = 0, binding = 3, std430) readonly restrict buffer BufM { int ms[]; };

#ifdef F16
#define LOADQ(i) float(qs[i])
#define LOADK(i) float(ks[i])
#define LOADV(i) float(vs[i])
#define LOADQ4(i) vec4(qs4[i])
#define LOADK4(i) vec4(ks4[i])
#define LOADV4(i) vec4(vs4[i])
#else
#define LOADQ(i) qs[i]
#define LOADK(i) ks[i]
#define LOADV(i) vs[i]
#define LOADQ4(i) qs4[i]
#define LOADK4(i) ks4[i]
#define LOADV4(i) vs4[i]
#endif
#define LOADMASK(i) ms[i]
#include "attention.glsl"
