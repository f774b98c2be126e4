// Elementwise unary ops, 4 elements per invocation: see elementwise.glsl.
// variant: elementwise_vec4_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define VEC4 1
#include "elementwise.glsl"
