// Strided copy of 32-bit words (layout_u16: 16-bit words): see layout.glsl.
// variant: layout_u16 U16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "layout.glsl"
