// Strided copy of 16-byte words: see layout.glsl.
#version 450
#extension GL_GOOGLE_include_directive : require
#define VEC4 1
#include "layout.glsl"
