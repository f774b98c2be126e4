// softmax / log_softmax over the last axis, scalar form: see softmax.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "softmax.glsl"
