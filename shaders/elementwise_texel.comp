// Elementwise unary ops for CPU devices (texel-buffer reads): see
// elementwise.glsl.
// variant: elementwise_texel_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define TEXEL 1
#include "elementwise.glsl"
