// Reductions, scalar form: see reduce.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "reduce.glsl"
