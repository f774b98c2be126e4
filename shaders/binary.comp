// Binary elementwise ops, scalar form: see binary.glsl.
// variant: binary_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "binary.glsl"
