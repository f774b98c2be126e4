// Binary elementwise ops for CPU devices (texel-buffer reads): see
// binary.glsl.
// variant: binary_texel_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define TEXEL 1
#include "binary.glsl"
