/* Unit tests for nt_b64: RFC 4648 vectors in the url alphabet, optional
 * padding, and every way a decoder input can be wrong. */
#include "nt_b64.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *plain;
    const char *enc;
    const char *padded;
} rfc4648[] = {
    {"", "", ""},
    {"f", "Zg", "Zg=="},
    {"fo", "Zm8", "Zm8="},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg", "Zm9vYg=="},
    {"fooba", "Zm9vYmE", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void expect_decode(const char *text, const void *want, size_t wantlen)
{
    unsigned char *out = NULL;
    size_t outlen = 12345;
    cr_assert_eq(nt_b64url_decode(text, strlen(text), &out, &outlen), NT_OK, "decoding '%s'", text);
    cr_assert_eq(outlen, wantlen, "length of '%s'", text);
    cr_assert_eq(memcmp(out, want, wantlen), 0, "bytes of '%s'", text);
    cr_assert_eq(out[outlen], '\0', "NUL after '%s'", text);
    free(out);
}

static void expect_refused(const char *text, size_t len)
{
    unsigned char *out = (unsigned char *)"untouched";
    size_t outlen = 777;
    cr_assert_eq(nt_b64url_decode(text, len, &out, &outlen), NT_EINVAL, "'%.*s' was accepted",
                 (int)len, text);
    cr_assert_str_eq((const char *)out, "untouched");
    cr_assert_eq(outlen, 777);
}

Test(b64, encodes_rfc4648_vectors_without_padding)
{
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        char *s = nt_b64url_encode(rfc4648[i].plain, strlen(rfc4648[i].plain));
        cr_assert_str_eq(s, rfc4648[i].enc);
        free(s);
    }
}

Test(b64, decodes_rfc4648_vectors_with_and_without_padding)
{
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        expect_decode(rfc4648[i].enc, rfc4648[i].plain, strlen(rfc4648[i].plain));
        expect_decode(rfc4648[i].padded, rfc4648[i].plain, strlen(rfc4648[i].plain));
    }
}

Test(b64, uses_the_url_alphabet)
{
    const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    char *s = nt_b64url_encode(bytes, sizeof bytes);
    cr_assert_str_eq(s, "-_-_");
    free(s);
    const unsigned char two[] = {0xfb, 0xff};
    s = nt_b64url_encode(two, sizeof two);
    cr_assert_str_eq(s, "-_8");
    free(s);
    expect_decode("-_-_", bytes, sizeof bytes);
    expect_decode("-_8", two, sizeof two);
}

Test(b64, refuses_the_standard_alphabet)
{
    expect_refused("+/+/", 4);
    expect_refused("-_+_", 4);
    expect_refused("-_-/", 4);
}

Test(b64, refuses_invalid_characters)
{
    expect_refused("Zm9v YmFy", 9);
    expect_refused("Zm9v\nYmFy", 9);
    expect_refused("Zm9v.mFy", 8);
    expect_refused("Zm9v\xc3\xa9mFy", 9);
    expect_refused("Zm9v\0YmF", 8); /* a NUL inside the length */
    expect_refused("Zm=v", 4);      /* padding in the middle */
    expect_refused("=Zm9", 4);
}

Test(b64, refuses_impossible_lengths)
{
    expect_refused("Z", 1);
    expect_refused("Zm9vY", 5);
    expect_refused("Zm9vYmFyZ", 9);
}

Test(b64, refuses_bad_padding)
{
    expect_refused("Zg=", 3);      /* padding that does not complete a group */
    expect_refused("Zg===", 5);    /* too much */
    expect_refused("Z===", 4);     /* three pad characters */
    expect_refused("Zm9v=", 5);    /* padding after a full group */
    expect_refused("Zm9v====", 8); /* a whole group of padding */
    expect_refused("Zm8==", 5);    /* one too many for two data characters */
    expect_refused("====", 4);
}

Test(b64, refuses_nonzero_trailing_bits)
{
    /* "Zg" is "f"; "Zh" has the same first byte but a 1 in the unused bits. */
    expect_refused("Zh", 2);
    expect_refused("Zm9", 3);
}

Test(b64, round_trips_every_length_and_byte)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof data; n++) {
        char *s = nt_b64url_encode(data, n);
        cr_assert_eq(strlen(s), n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0));
        cr_assert_eq(strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     strlen(s));
        expect_decode(s, data, n);
        free(s);
    }
}

Test(b64, decodes_empty_input)
{
    unsigned char *out = NULL;
    size_t outlen = 9;
    cr_assert_eq(nt_b64url_decode("", 0, &out, &outlen), NT_OK);
    cr_assert_eq(outlen, 0);
    cr_assert_not_null(out);
    cr_assert_eq(out[0], '\0');
    free(out);
}
