// The element types of an op's float storage buffers: under F16 (the
// *_f16 variants) f16 storage with f32 arithmetic, values widening on load
// and rounding once on store; else f32. Include before any declaration
// (it may enable extensions).
#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define ELEM float16_t
#define ELEM4 f16vec4
#else
#define ELEM float
#define ELEM4 vec4
#endif
