// Normalisation layers, x, scale and bias read through R32F (f16: R16F)
// texel buffers (CPU devices): see norm.glsl.
// variant: norm_texel_f16 F16=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#define TEXEL 1
#include "norm.glsl"
