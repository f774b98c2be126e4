// Binary elementwise ops, 4 elements per invocation: see binary.glsl.
// variant: binary_vec4_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define VEC4 1
#include "binary.glsl"
