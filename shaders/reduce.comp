// Reductions, scalar form: see reduce.glsl.
// variant: reduce_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "reduce.glsl"
