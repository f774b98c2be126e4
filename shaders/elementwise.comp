// Elementwise unary ops, scalar form: see elementwise.glsl.
// variant: elementwise_f16 F16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "elementwise.glsl"
