/* blazews kernels, NEON level (AArch64 only, where Advanced SIMD is always there).
 *
 * Masking: 16-byte XOR, four vectors a step, the last 16 bytes done by an
 * overlapping vector loaded before any store (correct in place).
 *
 * UTF-8: the lookup classifier of kernel_avx2.c (see there for how it works) on
 * 16-byte vectors: TBL does the nibble lookups, EXT brings the previous bytes
 * alongside, UQSUB finds third and fourth bytes. The last partial block is copied
 * into a zero-padded block, so nothing past the end is read.
 */
#include "kernel.h"

#include <arm_neon.h>

static void mask_neon(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key)
{
    size_t i = 0;
    uint8x16_t k, tail;

    if (n < 16) {
        bws_mask_scalar(dst, src, n, key);
        return;
    }
    k = vreinterpretq_u8_u32(vdupq_n_u32(key));
    tail = vld1q_u8(src + n - 16);
    for (; i + 64 <= n; i += 64) {
        uint8x16_t a = vld1q_u8(src + i);
        uint8x16_t b = vld1q_u8(src + i + 16);
        uint8x16_t c = vld1q_u8(src + i + 32);
        uint8x16_t d = vld1q_u8(src + i + 48);
        vst1q_u8(dst + i, veorq_u8(a, k));
        vst1q_u8(dst + i + 16, veorq_u8(b, k));
        vst1q_u8(dst + i + 32, veorq_u8(c, k));
        vst1q_u8(dst + i + 48, veorq_u8(d, k));
    }
    for (; i + 16 <= n; i += 16) {
        vst1q_u8(dst + i, veorq_u8(vld1q_u8(src + i), k));
    }
    if (i < n) {
        k = vreinterpretq_u8_u32(vdupq_n_u32(bws_key_rotate(key, n - 16)));
        vst1q_u8(dst + n - 16, veorq_u8(tail, k));
    }
}

#define TOO_SHORT (1 << 0)
#define TOO_LONG (1 << 1)
#define OVERLONG_3 (1 << 2)
#define TOO_LARGE (1 << 3)
#define SURROGATE (1 << 4)
#define OVERLONG_2 (1 << 5)
#define OVERLONG_4 (1 << 6)
#define TOO_LARGE_1000 (1 << 6)
#define TWO_CONTS (1 << 7)
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)
#define LARGE (CARRY | TOO_LARGE | TOO_LARGE_1000)
#define CONT2 (TOO_LONG | OVERLONG_2 | TWO_CONTS)

static const uint8_t byte_1_high[16] = {
    TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
    TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
    TOO_SHORT | OVERLONG_2,
    TOO_SHORT,
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4,
};
static const uint8_t byte_1_low[16] = {
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, CARRY | OVERLONG_2, CARRY, CARRY,
    CARRY | TOO_LARGE, LARGE, LARGE, LARGE, LARGE, LARGE, LARGE, LARGE, LARGE,
    LARGE | SURROGATE, LARGE, LARGE,
};
static const uint8_t byte_2_high[16] = {
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
    CONT2 | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
    CONT2 | OVERLONG_3 | TOO_LARGE,
    CONT2 | SURROGATE | TOO_LARGE,
    CONT2 | SURROGATE | TOO_LARGE,
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
};

static inline uint8x16_t check_block(uint8x16_t input, uint8x16_t prev_input, uint8x16_t t1h,
                                     uint8x16_t t1l, uint8x16_t t2h)
{
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    uint8x16_t prev1 = vextq_u8(prev_input, input, 15);
    uint8x16_t prev2 = vextq_u8(prev_input, input, 14);
    uint8x16_t prev3 = vextq_u8(prev_input, input, 13);
    uint8x16_t special = vandq_u8(vandq_u8(vqtbl1q_u8(t1h, vshrq_n_u8(prev1, 4)),
                                           vqtbl1q_u8(t1l, vandq_u8(prev1, low4))),
                                  vqtbl1q_u8(t2h, vshrq_n_u8(input, 4)));
    uint8x16_t third = vqsubq_u8(prev2, vdupq_n_u8(0xe0 - 0x80));
    uint8x16_t fourth = vqsubq_u8(prev3, vdupq_n_u8(0xf0 - 0x80));
    uint8x16_t due = vandq_u8(vorrq_u8(third, fourth), vdupq_n_u8(0x80));
    return veorq_u8(due, special);
}

static const uint8_t incomplete_max[16] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xf0 - 1, 0xe0 - 1, 0xc0 - 1,
};

static int utf8_valid_neon(const uint8_t *s, size_t n)
{
    const uint8x16_t t1h = vld1q_u8(byte_1_high);
    const uint8x16_t t1l = vld1q_u8(byte_1_low);
    const uint8x16_t t2h = vld1q_u8(byte_2_high);
    const uint8x16_t max = vld1q_u8(incomplete_max);
    uint8x16_t error = vdupq_n_u8(0), prev_input = vdupq_n_u8(0);
    uint8x16_t prev_incomplete = vdupq_n_u8(0);
    uint8_t pad[16];
    size_t i = 0;

    for (; i + 64 <= n; i += 64) {
        uint8x16_t a = vld1q_u8(s + i);
        uint8x16_t b = vld1q_u8(s + i + 16);
        uint8x16_t c = vld1q_u8(s + i + 32);
        uint8x16_t d = vld1q_u8(s + i + 48);
        if (vmaxvq_u8(vorrq_u8(vorrq_u8(a, b), vorrq_u8(c, d))) < 0x80) {
            error = vorrq_u8(error, prev_incomplete);
            prev_incomplete = vdupq_n_u8(0);
            prev_input = d;
            continue;
        }
        error = vorrq_u8(error, check_block(a, prev_input, t1h, t1l, t2h));
        error = vorrq_u8(error, check_block(b, a, t1h, t1l, t2h));
        error = vorrq_u8(error, check_block(c, b, t1h, t1l, t2h));
        error = vorrq_u8(error, check_block(d, c, t1h, t1l, t2h));
        prev_incomplete = vqsubq_u8(d, max);
        prev_input = d;
        if (vmaxvq_u8(error)) {
            return 0;
        }
    }
    for (; i + 16 <= n; i += 16) {
        uint8x16_t a = vld1q_u8(s + i);
        error = vorrq_u8(error, check_block(a, prev_input, t1h, t1l, t2h));
        prev_input = a;
    }
    memset(pad, 0, sizeof(pad));
    memcpy(pad, s + i, n - i);
    error = vorrq_u8(error, check_block(vld1q_u8(pad), prev_input, t1h, t1l, t2h));
    return vmaxvq_u8(error) == 0;
}

const bws_kernels bws_kernels_neon = {"neon", mask_neon, utf8_valid_neon};
