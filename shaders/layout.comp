// Strided copy of 32-bit words: see layout.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "layout.glsl"
