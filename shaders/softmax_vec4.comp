// softmax / log_softmax over the last axis, vec4 rows: see softmax.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#define VEC4 1
#include "softmax.glsl"
