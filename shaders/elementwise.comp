// Elementwise unary ops, scalar form: see elementwise.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "elementwise.glsl"
