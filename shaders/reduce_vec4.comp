// Reductions reading vec4s: see reduce.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#define VEC4 1
#include "reduce.glsl"
