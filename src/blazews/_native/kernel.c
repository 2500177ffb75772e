/* blazews native kernels: the scalar reference, CPU detection and dispatch.
 *
 * Compiled with the platform's baseline flags only: everything here runs on any CPU
 * of the target architecture. The SIMD levels live in kernel_<level>.c, each built
 * with its own -m flags, and are reached only through the table bws_init picks.
 */
#include "kernel.h"

#include <string.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define BWS_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
#else
#include <cpuid.h>
#endif
#endif

#if defined(__aarch64__) || defined(_M_ARM64)
#define BWS_AARCH64 1
#endif

/* ---- masking ------------------------------------------------------------------ */

void bws_mask_scalar(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key)
{
    uint8_t kb[8];
    uint64_t key64;
    size_t i = 0;

    memcpy(kb, &key, 4);
    memcpy(kb + 4, &key, 4);
    memcpy(&key64, kb, 8);
    /* Eight bytes a step: the key pattern repeats every four, so every step starts
     * at key byte 0. memcpy keeps the loads and stores alignment-free. */
    for (; i + 32 <= n; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        memcpy(&c, src + i + 16, 8);
        memcpy(&d, src + i + 24, 8);
        a ^= key64;
        b ^= key64;
        c ^= key64;
        d ^= key64;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
        memcpy(dst + i + 16, &c, 8);
        memcpy(dst + i + 24, &d, 8);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= key64;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++) {
        dst[i] = (uint8_t)(src[i] ^ kb[i & 3]);
    }
}

/* ---- UTF-8: a byte-class DFA ----------------------------------------------------
 *
 * States: 0 accept (on a boundary), 1 reject (sticky), 2 one continuation byte
 * left, 3 two left, 4 after E0 (next A0..BF), 5 after ED (next 80..9F, no
 * surrogates), 6 three left, 7 after F0 (next 90..BF), 8 after F4 (next 80..8F,
 * nothing above U+10FFFF). Every state rejects at the first byte that no valid text
 * can contain there, so an incremental feed fails as early as possible.
 *
 * Classes: 0 ASCII, 1 80..8F, 2 90..9F, 3 A0..BF, 4 never valid (C0, C1, F5..FF),
 * 5 C2..DF, 6 E0, 7 E1..EC and EE..EF, 8 ED, 9 F0, 10 F1..F3, 11 F4.
 */
static const uint8_t utf8_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

#define R BWS_UTF8_REJECT
static const uint8_t utf8_next[9][12] = {
    /*        asc 80 90 A0 bad C2 E0 E1 ED F0 F1 F4 */
    /* 0 */ {0, R, R, R, R, 2, 4, 3, 5, 7, 6, 8},
    /* 1 */ {R, R, R, R, R, R, R, R, R, R, R, R},
    /* 2 */ {R, 0, 0, 0, R, R, R, R, R, R, R, R},
    /* 3 */ {R, 2, 2, 2, R, R, R, R, R, R, R, R},
    /* 4 */ {R, R, R, 2, R, R, R, R, R, R, R, R},
    /* 5 */ {R, 2, 2, R, R, R, R, R, R, R, R, R},
    /* 6 */ {R, 3, 3, 3, R, R, R, R, R, R, R, R},
    /* 7 */ {R, R, 3, 3, R, R, R, R, R, R, R, R},
    /* 8 */ {R, 3, R, R, R, R, R, R, R, R, R, R},
};
#undef R

uint32_t bws_utf8_dfa(uint32_t state, const uint8_t *s, size_t n)
{
    size_t i = 0;

    if (state > 8) {
        return BWS_UTF8_REJECT;
    }
    while (i < n) {
        if (state == BWS_UTF8_ACCEPT && s[i] < 0x80) {
            /* ASCII fast path: eight bytes a step while no high bit is set. */
            i++;
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080)) {
                    break;
                }
                i += 8;
            }
            continue;
        }
        state = utf8_next[state][utf8_class[s[i]]];
        i++;
        if (state == BWS_UTF8_REJECT) {
            break;
        }
    }
    return state;
}

/* Whole texts go a sequence at a time rather than a byte at a time: the DFA's
 * byte-to-byte dependency chain is the slower of the two on non-ASCII text. */
int bws_utf8_valid_scalar(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t b = s[i], lo = 0x80, hi = 0xbf;
        if (b < 0x80) {
            i++;
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080)) {
                    break;
                }
                i += 8;
            }
            continue;
        }
        if (b < 0xc2) {
            return 0; /* a continuation byte, or the overlong leads C0 and C1 */
        }
        if (b < 0xe0) {
            if (n - i < 2 || (s[i + 1] & 0xc0) != 0x80) {
                return 0;
            }
            i += 2;
        } else if (b < 0xf0) {
            if (b == 0xe0) {
                lo = 0xa0; /* overlong below U+0800 */
            } else if (b == 0xed) {
                hi = 0x9f; /* surrogates */
            }
            if (n - i < 3 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xc0) != 0x80) {
                return 0;
            }
            i += 3;
        } else if (b < 0xf5) {
            if (b == 0xf0) {
                lo = 0x90; /* overlong below U+10000 */
            } else if (b == 0xf4) {
                hi = 0x8f; /* above U+10FFFF */
            }
            if (n - i < 4 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xc0) != 0x80 ||
                (s[i + 3] & 0xc0) != 0x80) {
                return 0;
            }
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

const bws_kernels bws_kernels_scalar = {"scalar", bws_mask_scalar, bws_utf8_valid_scalar};

/* ---- CPU detection -------------------------------------------------------------- */

static bws_cpu cpu;
static int cpu_detected;

#ifdef BWS_X86
static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
#if defined(_MSC_VER)
    int out[4];
    __cpuidex(out, (int)leaf, (int)sub);
    r[0] = (uint32_t)out[0];
    r[1] = (uint32_t)out[1];
    r[2] = (uint32_t)out[2];
    r[3] = (uint32_t)out[3];
#else
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

static uint64_t xgetbv0(void)
{
#if defined(_MSC_VER)
    return (uint64_t)_xgetbv(0);
#else
    uint32_t lo, hi;
    /* xgetbv, spelled as bytes for assemblers that predate the mnemonic. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
#endif
}

static void detect_x86(void)
{
    uint32_t r[4], max_leaf;
    int osxsave, os_ymm = 0, os_zmm = 0;

    cpuid(0, 0, r);
    max_leaf = r[0];
    if (max_leaf < 1) {
        return;
    }
    cpuid(1, 0, r);
    cpu.sse2 = (r[3] >> 26) & 1;
    cpu.ssse3 = (r[2] >> 9) & 1;
    cpu.sse41 = (r[2] >> 19) & 1;
    cpu.sse42 = (r[2] >> 20) & 1;
    osxsave = (r[2] >> 27) & 1;
    if (osxsave) {
        uint64_t xcr0 = xgetbv0();
        os_ymm = (xcr0 & 0x6) == 0x6;            /* XMM and YMM state */
        os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    }
    cpu.avx = os_ymm && ((r[2] >> 28) & 1);
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        cpu.avx2 = cpu.avx && ((r[1] >> 5) & 1);
        cpu.bmi2 = (r[1] >> 8) & 1;
        cpu.avx512f = os_zmm && ((r[1] >> 16) & 1);
        cpu.avx512bw = cpu.avx512f && ((r[1] >> 30) & 1);
        cpu.avx512vl = cpu.avx512f && ((r[1] >> 31) & 1);
        cpu.avx512vbmi2 = cpu.avx512f && ((r[2] >> 6) & 1);
    }
}
#endif

static int level_supported_by_cpu(int level)
{
    switch (level) {
    case BWS_LEVEL_SCALAR:
        return 1;
    case BWS_LEVEL_SSE2:
        return cpu.sse2;
    case BWS_LEVEL_AVX2:
        return cpu.avx2;
    case BWS_LEVEL_AVX512:
        return cpu.avx512f && cpu.avx512bw && cpu.avx2;
    case BWS_LEVEL_NEON:
        return cpu.neon;
    default:
        return 0;
    }
}

static const bws_kernels *level_table(int level)
{
    switch (level) {
    case BWS_LEVEL_SCALAR:
        return &bws_kernels_scalar;
#ifdef BWS_HAVE_SSE2
    case BWS_LEVEL_SSE2:
        return &bws_kernels_sse2;
#endif
#ifdef BWS_HAVE_AVX2
    case BWS_LEVEL_AVX2:
        return &bws_kernels_avx2;
#endif
#ifdef BWS_HAVE_AVX512
    case BWS_LEVEL_AVX512:
        return &bws_kernels_avx512;
#endif
#ifdef BWS_HAVE_NEON
    case BWS_LEVEL_NEON:
        return &bws_kernels_neon;
#endif
    default:
        return NULL;
    }
}

static const char *const level_names[BWS_LEVEL_COUNT] = {"scalar", "sse2", "avx2", "avx512", "neon"};

const bws_kernels *bws_active = &bws_kernels_scalar;

const char *bws_level_name(int level)
{
    if (level < 0 || level >= BWS_LEVEL_COUNT) {
        return NULL;
    }
    return level_names[level];
}

int bws_level_from_name(const char *name)
{
    int level;
    for (level = 0; level < BWS_LEVEL_COUNT; level++) {
        if (strcmp(name, level_names[level]) == 0) {
            return level;
        }
    }
    return -1;
}

int bws_level_compiled(int level)
{
    return level_table(level) != NULL;
}

int bws_level_supported(int level)
{
    return level_table(level) != NULL && level_supported_by_cpu(level);
}

/* The highest supported level, except that AVX-512 is picked by itself only on
 * CPUs that also have VBMI2 (Ice Lake, Zen 4 and later): the earlier ones (Skylake-SP,
 * Cascade Lake) lower the core clock while 512-bit code runs, which would tax the
 * interpreter around each short call. BLAZEWS_SIMD=avx512 still forces it there. */
int bws_best_level(void)
{
    int level, best = BWS_LEVEL_SCALAR;
    for (level = 0; level < BWS_LEVEL_COUNT; level++) {
        if (level == BWS_LEVEL_AVX512 && !cpu.avx512vbmi2) {
            continue;
        }
        if (bws_level_supported(level)) {
            best = level;
        }
    }
    return best;
}

int bws_set_level(int level)
{
    if (!bws_level_supported(level)) {
        return -1;
    }
    bws_active = level_table(level);
    return 0;
}

void bws_init(void)
{
    if (cpu_detected) {
        return;
    }
    memset(&cpu, 0, sizeof(cpu));
#ifdef BWS_X86
    detect_x86();
#endif
#ifdef BWS_AARCH64
    cpu.neon = 1; /* Advanced SIMD is part of the AArch64 base architecture. */
#endif
    cpu_detected = 1;
    bws_active = level_table(bws_best_level());
}

const bws_cpu *bws_cpu_features(void)
{
    bws_init();
    return &cpu;
}

/* ---- entry points ------------------------------------------------------------- */

void bws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], size_t offset)
{
    uint32_t k;
    memcpy(&k, key, 4);
    bws_active->mask(dst, src, n, bws_key_rotate(k, offset));
}

int bws_utf8_valid(const uint8_t *s, size_t n)
{
    return bws_active->utf8_valid(s, n);
}

uint32_t bws_utf8_feed(uint32_t state, const uint8_t *s, size_t n)
{
    size_t i = 0, split, j;

    if (state == BWS_UTF8_REJECT || state > 8) {
        return BWS_UTF8_REJECT;
    }
    /* Finish a sequence cut at the end of the previous chunk (three bytes at most). */
    while (state != BWS_UTF8_ACCEPT && i < n) {
        state = utf8_next[state][utf8_class[s[i]]];
        i++;
        if (state == BWS_UTF8_REJECT) {
            return state;
        }
    }
    if (n - i < 16) {
        return bws_utf8_dfa(state, s + i, n - i);
    }
    /* Bulk: validate [i, split) as a complete text, where split is the last byte in
     * the final four that is not a continuation byte (a sequence boundary in any
     * valid text); the DFA takes [split, n) and leaves the state for the next chunk.
     * Four continuation bytes in a row are never valid, so when there is no such
     * byte the bulk check covers everything and rejects it. */
    split = n;
    for (j = n; j > n - 4;) {
        j--;
        if ((s[j] & 0xc0) != 0x80) {
            split = j;
            break;
        }
    }
    if (!bws_active->utf8_valid(s + i, split - i)) {
        return BWS_UTF8_REJECT;
    }
    return bws_utf8_dfa(BWS_UTF8_ACCEPT, s + split, n - split);
}
