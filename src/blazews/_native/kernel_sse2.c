/* blazews kernels, SSE2 level (compiled with -msse2).
 *
 * Masking: 16-byte XOR, four vectors a step. UTF-8: SSE2 has no byte shuffle, so
 * this level scans ASCII 64 bytes at a time and hands every non-ASCII stretch to
 * the scalar validator (kernel.c), coming back to the vector scan on the next boundary.
 */
#include "kernel.h"

#include <emmintrin.h>

static void mask_sse2(uint8_t *dst, const uint8_t *src, size_t n, uint32_t key)
{
    size_t i = 0;
    __m128i k, head = _mm_setzero_si128(), tail;

    if (n < 16) {
        bws_mask_scalar(dst, src, n, key);
        return;
    }
    k = _mm_set1_epi32((int)key);
    /* The last 16 bytes are loaded before anything is stored and written last,
     * overlapping the loop's final block: no scalar tail, and correct in place. */
    tail = _mm_loadu_si128((const __m128i *)(src + n - 16));
    if (n >= 256) {
        /* Long buffers: the loop starts where dst is 16-byte aligned, so no store
         * splits a cache line; the first 16 bytes, loaded now, are written after. */
        head = _mm_loadu_si128((const __m128i *)src);
        i = (16 - ((uintptr_t)dst & 15)) & 15;
        k = _mm_set1_epi32((int)bws_key_rotate(key, i));
    }
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
        _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, k));
        _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, k));
        _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, k));
    }
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, k));
    }
    if (i < n) {
        k = _mm_set1_epi32((int)bws_key_rotate(key, n - 16));
        _mm_storeu_si128((__m128i *)(dst + n - 16), _mm_xor_si128(tail, k));
    }
    if (n >= 256) {
        _mm_storeu_si128((__m128i *)dst, _mm_xor_si128(head, _mm_set1_epi32((int)key)));
    }
}

/* Bytes of non-ASCII text the scalar code takes before the vector scan looks again. */
#define SSE2_SCALAR_STRETCH 64

static int utf8_valid_sse2(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t end;
        int bits = 0;

        /* Here i is on a sequence boundary. */
        for (; i + 64 <= n; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(s + i + 48));
            if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))) {
                break;
            }
        }
        for (; i + 16 <= n; i += 16) {
            bits = _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(s + i)));
            if (bits) {
                break;
            }
        }
        if (i + 16 > n) {
            return bws_utf8_valid_scalar(s + i, n - i);
        }
        /* Skip the ASCII before the first high byte; a stretch of text follows that
         * ends just before a byte that is not a continuation byte, which valid text
         * reaches on a boundary. */
        while (!(bits & 1)) {
            bits >>= 1;
            i++;
        }
        end = i + SSE2_SCALAR_STRETCH < n ? i + SSE2_SCALAR_STRETCH : n;
        while (end < n && (s[end] & 0xc0) == 0x80) {
            end++;
        }
        if (!bws_utf8_valid_scalar(s + i, end - i)) {
            return 0;
        }
        i = end;
    }
    return 1;
}

const bws_kernels bws_kernels_sse2 = {"sse2", mask_sse2, utf8_valid_sse2};
