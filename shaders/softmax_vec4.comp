// softmax / log_softmax over the last axis, vec4 rows: see softmax.glsl.
// variant: softmax_vec4_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define VEC4 1
#include "softmax.glsl"
