// Normalisation layers, storage-buffer reads (any device): see norm.glsl.
// variant: norm_f16 F16=1
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#include "norm.glsl"
