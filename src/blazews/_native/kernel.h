/* blazews native kernels: WebSocket masking and UTF-8 validation.
 *
 * One table of function pointers per instruction-set level (scalar, SSE2, AVX2,
 * AVX-512, NEON), each level in its own file compiled with its own flags. kernel.c
 * detects the CPU once (bws_init) and picks the best level the CPU and the OS
 * support; nothing compiled for a higher level runs unless that level was picked.
 *
 * Contract of every level:
 *   mask(dst, src, n, key): dst[i] = src[i] ^ key_byte[i % 4] for i < n, where
 *     key_byte are the four bytes of `key` in memory order (already rotated by the
 *     caller for a nonzero payload offset); dst == src is allowed (in place), other
 *     overlaps are not. Unaligned pointers are fine. No byte outside [src, src+n)
 *     is read, none outside [dst, dst+n) is written.
 *   utf8_valid(s, n): 1 when [s, s+n) is a complete, valid UTF-8 string (RFC 3629:
 *     shortest form, no surrogates, nothing above U+10FFFF), else 0.
 */
#ifndef BWS_KERNEL_H
#define BWS_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*bws_mask_fn)(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key);
typedef int (*bws_utf8_valid_fn)(const uint8_t *s, size_t n);

typedef struct bws_kernels {
    const char *name;
    bws_mask_fn mask;
    bws_utf8_valid_fn utf8_valid;
} bws_kernels;

/* Levels, lowest first. A level's table exists only when its file was compiled:
 * setup.py defines BWS_HAVE_<LEVEL> for each one it built. */
enum {
    BWS_LEVEL_SCALAR = 0,
    BWS_LEVEL_SSE2,
    BWS_LEVEL_AVX2,
    BWS_LEVEL_AVX512,
    BWS_LEVEL_NEON,
    BWS_LEVEL_COUNT
};

extern const bws_kernels bws_kernels_scalar;
#ifdef BWS_HAVE_SSE2
extern const bws_kernels bws_kernels_sse2;
#endif
#ifdef BWS_HAVE_AVX2
extern const bws_kernels bws_kernels_avx2;
#endif
#ifdef BWS_HAVE_AVX512
extern const bws_kernels bws_kernels_avx512;
#endif
#ifdef BWS_HAVE_NEON
extern const bws_kernels bws_kernels_neon;
#endif

/* CPU features, as usable: an x86 vector extension counts only when the OS also
 * saves its registers (XGETBV). */
typedef struct bws_cpu {
    int sse2, ssse3, sse41, sse42, avx, avx2, bmi2, avx512f, avx512bw, avx512vl, avx512vbmi2, neon;
} bws_cpu;

/* Detect the CPU and select the best level. Idempotent; call once at import. */
void bws_init(void);
const bws_cpu *bws_cpu_features(void);

/* The level now in use, and a way to force one. */
extern const bws_kernels *bws_active;
const char *bws_level_name(int level);
int bws_level_from_name(const char *name); /* -1 when unknown */
int bws_level_compiled(int level);
int bws_level_supported(int level);        /* compiled and the CPU has it */
int bws_set_level(int level);              /* 0 on success, -1 when not supported */
int bws_best_level(void);                  /* what bws_init picks */

/* Payload masking at payload position `offset` (only offset % 4 matters). */
void bws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], size_t offset);

/* UTF-8 validation. Incremental state: BWS_UTF8_ACCEPT on a sequence boundary,
 * BWS_UTF8_REJECT once the text is certainly invalid (sticky), anything else in the
 * middle of a sequence. */
#define BWS_UTF8_ACCEPT 0u
#define BWS_UTF8_REJECT 1u

int bws_utf8_valid(const uint8_t *s, size_t n);
uint32_t bws_utf8_feed(uint32_t state, const uint8_t *s, size_t n);

/* Scalar building blocks, shared by the SIMD levels (compiled in kernel.c without
 * any -m flag). */
void bws_mask_scalar(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key);
/* kernel_avx2.c; also the AVX-512 level's mask (setup.py builds AVX-512 only with
 * AVX2). Call it only where the CPU has AVX2. */
void bws_mask_avx2(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key);
uint32_t bws_utf8_dfa(uint32_t state, const uint8_t *s, size_t n);
int bws_utf8_valid_scalar(const uint8_t *s, size_t n);

/* Rotate a key (four bytes in memory order) so that its first byte is the one that
 * applies `shift` bytes further into the payload. */
static inline uint32_t bws_key_rotate(uint32_t key, size_t shift)
{
    uint8_t kb[8];
    uint32_t r;
    memcpy(kb, &key, 4);
    memcpy(kb + 4, &key, 4);
    memcpy(&r, kb + (shift & 3), 4);
    return r;
}

#ifdef __cplusplus
}
#endif

#endif /* BWS_KERNEL_H */
