// softmax / log_softmax over the last axis, scalar form: see softmax.glsl.
// variant: softmax_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "softmax.glsl"
