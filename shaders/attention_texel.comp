// Scaled dot-product attention, q/k/v/mask read through uniform texel
// buffers (CPU devices: vector gathers on lavapipe): see attention.glsl.
// q, k, v are RGBA32F views when VEC, R32F views otherwise; the mask R32I.
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable

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
