// Normalisation layers, storage-buffer reads (any device): see norm.glsl.
#version 450
#extension GL_EXT_control_flow_attributes : enable
#extension GL_GOOGLE_include_directive : enable
#include "norm.glsl"
