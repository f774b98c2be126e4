// Reductions reading vec4s: see reduce.glsl.
// variant: reduce_vec4_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define VEC4 1
#include "reduce.glsl"
