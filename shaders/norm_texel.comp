// Normalisation layers, x, scale and bias read through R32F texel buffers
// (CPU devices): see norm.glsl.
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#define TEXEL 1
#include "norm.glsl"
