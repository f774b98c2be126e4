// Scaled dot-product attention, storage-buffer reads (any device): see
// attention.glsl. The vec4 views alias the float ones (VEC only).
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable

layout(set = 0, binding = 0, std430) readonly restrict buffer BufQ { float qs[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufK { float ks[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufV { float vs[]; };
layout(set = 0, binding = 0, std430) readonly restrict buffer BufQ4 { vec4 qs4[]; };
layout(set = 0, binding = 1, std430) readonly restrict buffer BufK4 { vec4 ks4[]; };
layout(set = 0, binding = 2, std430) readonly restrict buffer BufV4 { vec4 vs4[]; };
layout(set = 0, binding = 3, std430) readonly restrict buffer BufM { int ms[]; };

#define LOADQ(i) qs[i]
#define LOADK(i) ks[i]
#define LOADV(i) vs[i]
#define LOADQ4(i) qs4[i]
#define LOADK4(i) ks4[i]
#define LOADV4(i) vs4[i]
#define LOADMASK(i) ms[i]
#include "attention.glsl"
