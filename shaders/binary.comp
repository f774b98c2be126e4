// Binary elementwise ops, scalar form: see binary.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "binary.glsl"
