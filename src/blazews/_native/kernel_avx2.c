/* blazews kernels, AVX2 level (compiled with -mavx2).
 *
 * Masking: 32-byte XOR, four vectors a step.
 *
 * UTF-8: a vectorised classification of byte pairs, after the lookup algorithm of
 * Keiser and Lemire ("Validating UTF-8 in less than one instruction per byte",
 * 2021). Each byte is judged with the byte before it by three 16-entry table
 * lookups (high nibble of the previous byte, its low nibble, high nibble of this
 * byte) whose AND holds one bit per kind of error; the third and fourth bytes of
 * long sequences are checked by comparing with the bytes two and three back. A text
 * that stops inside a sequence is caught by validating a zero-padded last block.
 */
#include "kernel.h"

#include <immintrin.h>

void bws_mask_avx2(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key)
{
    size_t i = 0;
    __m256i k, head = _mm256_setzero_si256(), tail;

    if (n < 32) {
        if (n >= 16) {
            /* Two overlapping 16-byte blocks, both loaded before either store. */
            __m128i k1 = _mm_set1_epi32((int)key);
            __m128i k2 = _mm_set1_epi32((int)bws_key_rotate(key, n - 16));
            __m128i a = _mm_loadu_si128((const __m128i *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(src + n - 16));
            _mm_storeu_si128((__m128i *)dst, _mm_xor_si128(a, k1));
            _mm_storeu_si128((__m128i *)(dst + n - 16), _mm_xor_si128(b, k2));
        } else {
            bws_mask_scalar(dst, src, n, key);
        }
        return;
    }
    k = _mm256_set1_epi32((int)key);
    /* The last 32 bytes are loaded before anything is stored and written last,
     * overlapping the loop's final block: no scalar tail, and correct in place. */
    tail = _mm256_loadu_si256((const __m256i *)(src + n - 32));
    if (n >= 256) {
        /* Long buffers: the loop starts where dst is 32-byte aligned, so no store
         * splits a cache line; the first 32 bytes, loaded now, are written after. */
        head = _mm256_loadu_si256((const __m256i *)src);
        i = (32 - ((uintptr_t)dst & 31)) & 31;
        k = _mm256_set1_epi32((int)bws_key_rotate(key, i));
    }
    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
    }
    if (i < n) {
        k = _mm256_set1_epi32((int)bws_key_rotate(key, n - 32));
        _mm256_storeu_si256((__m256i *)(dst + n - 32), _mm256_xor_si256(tail, k));
    }
    if (n >= 256) {
        _mm256_storeu_si256((__m256i *)dst, _mm256_xor_si256(head, _mm256_set1_epi32((int)key)));
    }
}

/* Error bits. A pair (previous byte, this byte) is an error when the AND of its
 * three lookups is nonzero, except TWO_CONTS (continuation after continuation),
 * which must be set exactly where a third or fourth byte of a sequence is due. */
#define TOO_SHORT (1 << 0)      /* lead byte followed by a lead byte or ASCII */
#define TOO_LONG (1 << 1)       /* ASCII followed by a continuation byte */
#define OVERLONG_3 (1 << 2)     /* E0 80..9F */
#define TOO_LARGE (1 << 3)      /* F4 90..BF, F5..FF 90..BF */
#define SURROGATE (1 << 4)      /* ED A0..BF */
#define OVERLONG_2 (1 << 5)     /* C0..C1 continuation */
#define OVERLONG_4 (1 << 6)     /* F0 80..8F */
#define TOO_LARGE_1000 (1 << 6) /* F5..FF 80..8F (shares the bit: both need 8x next) */
#define TWO_CONTS (1 << 7)
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

#define TABLE16(a, b, c, d, e, f, g, h, i, j, k, l, m, n_, o, p)                           \
    _mm256_setr_epi8((char)(a), (char)(b), (char)(c), (char)(d), (char)(e), (char)(f),      \
                     (char)(g), (char)(h), (char)(i), (char)(j), (char)(k), (char)(l),      \
                     (char)(m), (char)(n_), (char)(o), (char)(p), (char)(a), (char)(b),     \
                     (char)(c), (char)(d), (char)(e), (char)(f), (char)(g), (char)(h),      \
                     (char)(i), (char)(j), (char)(k), (char)(l), (char)(m), (char)(n_),     \
                     (char)(o), (char)(p))

/* The vector holding, at each position, the byte `n` places earlier (taken from
 * `prev` at the start). AVX2 byte alignment works per 128-bit lane, so the lane
 * that straddles the two vectors is assembled first. */
#define PREV(input, prev, n) \
    _mm256_alignr_epi8((input), _mm256_permute2x128_si256((prev), (input), 0x21), 16 - (n))

static inline __m256i check_block(__m256i input, __m256i prev_input)
{
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i byte_1_high_table = TABLE16(
        /* 0x0_ .. 0x7_: ASCII */
        TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
        /* 0x8_ .. 0xB_: continuation */
        TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
        /* 0xC_ */ TOO_SHORT | OVERLONG_2,
        /* 0xD_ */ TOO_SHORT,
        /* 0xE_ */ TOO_SHORT | OVERLONG_3 | SURROGATE,
        /* 0xF_ */ TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4);
    const __m256i byte_1_low_table = TABLE16(
        /* _0 */ CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,
        /* _1 */ CARRY | OVERLONG_2,
        /* _2 */ CARRY,
        /* _3 */ CARRY,
        /* _4 */ CARRY | TOO_LARGE,
        /* _5 .. _C */ CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
        /* _D */ CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
        /* _E .. _F */ CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000);
    const __m256i byte_2_high_table = TABLE16(
        /* 0x0_ .. 0x7_: ASCII */
        TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
        /* 0x8_ */ TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
        /* 0x9_ */ TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
        /* 0xA_ */ TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        /* 0xB_ */ TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        /* 0xC_ .. 0xF_: lead bytes */
        TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT);

    __m256i prev1 = PREV(input, prev_input, 1);
    __m256i b1h = _mm256_shuffle_epi8(byte_1_high_table,
                                      _mm256_and_si256(_mm256_srli_epi16(prev1, 4), low4));
    __m256i b1l = _mm256_shuffle_epi8(byte_1_low_table, _mm256_and_si256(prev1, low4));
    __m256i b2h = _mm256_shuffle_epi8(byte_2_high_table,
                                      _mm256_and_si256(_mm256_srli_epi16(input, 4), low4));
    __m256i special = _mm256_and_si256(_mm256_and_si256(b1h, b1l), b2h);

    /* Third or fourth byte of a sequence: the byte two back is >= E0 or the one
     * three back is >= F0; the saturating subtraction leaves the top bit set just
     * for those. */
    __m256i prev2 = PREV(input, prev_input, 2);
    __m256i prev3 = PREV(input, prev_input, 3);
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xe0 - 0x80)));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xf0 - 0x80)));
    __m256i due = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(due, special);
}

/* Nonzero where the block ends inside a sequence: a lead byte in the last byte, a
 * three- or four-byte lead in the last two, a four-byte lead in the last three. */
static inline __m256i incomplete_end(__m256i input)
{
    const __m256i max = _mm256_setr_epi8(
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        (char)(0xf0 - 1), (char)(0xe0 - 1), (char)(0xc0 - 1));
    return _mm256_subs_epu8(input, max);
}

static int utf8_valid_avx2(const uint8_t *s, size_t n)
{
    __m256i error = _mm256_setzero_si256();
    __m256i prev_input = _mm256_setzero_si256();
    __m256i prev_incomplete = _mm256_setzero_si256();
    __m256i last;
    uint8_t pad[32];
    size_t i = 0;

    for (; i + 64 <= n; i += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(s + i + 32));
        if (!_mm256_movemask_epi8(_mm256_or_si256(a, b))) {
            /* All ASCII: only a sequence left open by the previous block fails. */
            error = _mm256_or_si256(error, prev_incomplete);
            prev_incomplete = _mm256_setzero_si256();
            prev_input = b;
            continue;
        }
        error = _mm256_or_si256(error, check_block(a, prev_input));
        error = _mm256_or_si256(error, check_block(b, a));
        prev_incomplete = incomplete_end(b);
        prev_input = b;
        if (!_mm256_testz_si256(error, error)) {
            return 0;
        }
    }
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(s + i));
        if (!_mm256_movemask_epi8(a)) {
            error = _mm256_or_si256(error, prev_incomplete);
            prev_incomplete = _mm256_setzero_si256();
        } else {
            error = _mm256_or_si256(error, check_block(a, prev_input));
            prev_incomplete = incomplete_end(a);
        }
        prev_input = a;
    }
    if (i == n) {
        error = _mm256_or_si256(error, prev_incomplete);
        return _mm256_testz_si256(error, error);
    }
    /* The rest, padded with zeros (ASCII): a sequence cut by the end of the text is
     * followed by a zero byte and fails as too short. */
    memset(pad, 0, sizeof(pad));
    memcpy(pad, s + i, n - i);
    last = _mm256_loadu_si256((const __m256i *)pad);
    error = _mm256_or_si256(error, check_block(last, prev_input));
    return _mm256_testz_si256(error, error);
}

const bws_kernels bws_kernels_avx2 = {"avx2", bws_mask_avx2, utf8_valid_avx2};
