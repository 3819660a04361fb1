#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/units.h"

static int64_t dur(const char *s)
{
    int64_t v = -12345;
    assert_int_equal(hx_units_parse_duration(s, &v), 0);
    return v;
}

static int64_t size(const char *s)
{
    int64_t v = -12345;
    assert_int_equal(hx_units_parse_size(s, &v), 0);
    return v;
}

static void test_parse_int_cases(void **state)
{
    (void)state;
    int64_t v = 7;
    assert_int_equal(hx_units_parse_int("8080", &v), 0);
    assert_int_equal(v, 8080);
    assert_int_equal(hx_units_parse_int("-1", &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(hx_units_parse_int("+5", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(hx_units_parse_int("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(hx_units_parse_int("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    v = 7;
    assert_int_equal(hx_units_parse_int("9223372036854775808", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_int("99999999999999999999999", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_int("1.5", &v), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_int("abc", &v), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_int("", &v), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_int(" 1", &v), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_int("1 ", &v), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_int("-", &v), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_int("0x10", &v), HX_UNITS_EINVAL);
    assert_int_equal(v, 7); /* untouched on failure */
}

static void test_parse_double_and_percent(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(hx_units_parse_double("1.5", &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(hx_units_parse_double("-2e3", &d), 0);
    assert_true(d == -2000);
    assert_int_equal(hx_units_parse_double(".5", &d), 0);
    assert_true(d == 0.5);
    assert_int_equal(hx_units_parse_double("nan", &d), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_double("inf", &d), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_double("0x1p3", &d), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_double("1e999", &d), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_double("1e", &d), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_percent("90%", &d), 0);
    assert_true(d == 90);
    assert_int_equal(hx_units_parse_percent("12.5", &d), 0);
    assert_true(d == 12.5);
    assert_int_equal(hx_units_parse_percent("%", &d), HX_UNITS_EINVAL);
    assert_int_equal(hx_units_parse_percent("90%%", &d), HX_UNITS_EINVAL);
}

static void test_parse_duration_good(void **state)
{
    (void)state;
    assert_int_equal(dur("100ms"), 100);
    assert_int_equal(dur("30s"), 30000);
    assert_int_equal(dur("2m"), 120000);
    assert_int_equal(dur("1h"), 3600000);
    assert_int_equal(dur("1m30s"), 90000);
    assert_int_equal(dur("1h30m"), 5400000);
    assert_int_equal(dur("1.5s"), 1500);
    assert_int_equal(dur("1.5h"), 5400000);
    assert_int_equal(dur(".5s"), 500);
    assert_int_equal(dur("0"), 0);
    assert_int_equal(dur("-0"), 0);
    assert_int_equal(dur("0s"), 0);
    assert_int_equal(dur("-1s"), -1000);
    assert_int_equal(dur("+2s"), 2000);
    assert_int_equal(dur("30"), 30000);   /* bare number = seconds */
    assert_int_equal(dur("1.5"), 1500);
    assert_int_equal(dur("-1"), -1000);
    assert_int_equal(dur("1s500ms"), 1500);
    assert_int_equal(dur("2000000ns"), 2);
}

static void test_parse_duration_rounds_up_below_ms(void **state)
{
    (void)state;
    assert_int_equal(dur("500us"), 1);
    assert_int_equal(dur("1us"), 1);
    assert_int_equal(dur("1ns"), 1);
    assert_int_equal(dur("1500us"), 2);
    assert_int_equal(dur("1000us"), 1);
    assert_int_equal(dur("500\xc2\xb5s"), 1); /* micro sign */
    assert_int_equal(dur("-500us"), -1);
}

static void test_parse_duration_bad(void **state)
{
    (void)state;
    int64_t v = 42;
    const char *bad[] = {"", "s", "-", "1x", "1 s", "1S", "ms", "1.2.3s", "1s 2s", "1m-1s",
                         " 1s", "1s ", "abc", "1e3s", ".s", "1sec"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (hx_units_parse_duration(bad[i], &v) != HX_UNITS_EINVAL)
            fail_msg("duration \"%s\" was accepted", bad[i]);
    }
    assert_int_equal(v, 42);
    assert_int_equal(hx_units_parse_duration("3000000h", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_duration("99999999999999999999s", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_duration("2562047h48m", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_duration("2562047h", &v), 0); /* just fits */
    assert_true(v == (int64_t)2562047 * 3600000);
}

static void test_parse_size_good(void **state)
{
    (void)state;
    assert_int_equal(size("1024"), 1024);
    assert_int_equal(size("0"), 0);
    assert_int_equal(size("-1"), -1);
    assert_int_equal(size("16KB"), 16384);
    assert_int_equal(size("6MB"), 6291456);
    assert_int_equal(size("15MB"), 15728640);
    assert_int_equal(size("2MiB"), 2097152);
    assert_int_equal(size("1G"), 1073741824);
    assert_int_equal(size("1gib"), 1073741824);
    assert_int_equal(size("8mb"), 8388608);
    assert_int_equal(size("100B"), 100);
    assert_int_equal(size("16 KB"), 16384);
    assert_int_equal(size("1.5MB"), 1572864);
    assert_int_equal(size("0.5K"), 512);
    assert_int_equal(size("1T"), (int64_t)1 << 40);
    assert_int_equal(size("8388608"), 8388608);
}

static void test_parse_size_bad(void **state)
{
    (void)state;
    int64_t v = 9;
    const char *bad[] = {"", "MB", "1.5", "1.3B", "1.1K", "1XB", "1 M B", "abc", "-", "1MBB",
                         "0.0000000001K"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (hx_units_parse_size(bad[i], &v) != HX_UNITS_EINVAL)
            fail_msg("size \"%s\" was accepted", bad[i]);
    }
    assert_int_equal(v, 9);
    assert_int_equal(hx_units_parse_size("8589934592G", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_size("9223372036854775808", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_size("99999999999999999999999", &v), HX_UNITS_ERANGE);
    assert_int_equal(hx_units_parse_size("8388607T", &v), 0);
    assert_int_equal(v, (int64_t)8388607 << 40);
}

static void test_format_duration(void **state)
{
    (void)state;
    char b[HX_UNITS_BUFSZ];
    assert_string_equal(hx_units_format_duration(0, b, sizeof b), "0s");
    assert_string_equal(hx_units_format_duration(100, b, sizeof b), "100ms");
    assert_string_equal(hx_units_format_duration(30000, b, sizeof b), "30s");
    assert_string_equal(hx_units_format_duration(120000, b, sizeof b), "2m");
    assert_string_equal(hx_units_format_duration(3600000, b, sizeof b), "1h");
    assert_string_equal(hx_units_format_duration(5400000, b, sizeof b), "1h30m");
    assert_string_equal(hx_units_format_duration(90000, b, sizeof b), "1m30s");
    assert_string_equal(hx_units_format_duration(1500, b, sizeof b), "1.5s");
    assert_string_equal(hx_units_format_duration(1250, b, sizeof b), "1.25s");
    assert_string_equal(hx_units_format_duration(3600001, b, sizeof b), "1h0.001s");
    assert_string_equal(hx_units_format_duration(-5000, b, sizeof b), "-5s");
    assert_string_equal(hx_units_format_duration(-1, b, sizeof b), "-1ms");
}

static void test_format_duration_round_trips(void **state)
{
    (void)state;
    const int64_t vals[] = {0, 1, 999, 1000, 1001, 59999, 60000, 61500, 3599999, 3600000,
                            86400000, 123456789, -1, -90000, INT64_MAX / 1000000, INT64_MIN / 1000000};
    char b[HX_UNITS_BUFSZ];
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        int64_t back = 0;
        hx_units_format_duration(vals[i], b, sizeof b);
        assert_int_equal(hx_units_parse_duration(b, &back), 0);
        if (back != vals[i])
            fail_msg("%lld printed as %s read back as %lld", (long long)vals[i], b, (long long)back);
    }
}

static void test_format_size(void **state)
{
    (void)state;
    char b[HX_UNITS_BUFSZ];
    assert_string_equal(hx_units_format_size(2097152, b, sizeof b), "2MB");
    assert_string_equal(hx_units_format_size(16384, b, sizeof b), "16KB");
    assert_string_equal(hx_units_format_size(1073741824, b, sizeof b), "1GB");
    assert_string_equal(hx_units_format_size(1536, b, sizeof b), "1536");
    assert_string_equal(hx_units_format_size(1000, b, sizeof b), "1000");
    assert_string_equal(hx_units_format_size(0, b, sizeof b), "0");
    assert_string_equal(hx_units_format_size(-1, b, sizeof b), "-1");
    const int64_t vals[] = {0, 1, 1023, 1024, 1536, 6291456, 15728640, INT64_MAX, -4096};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        int64_t back = 0;
        hx_units_format_size(vals[i], b, sizeof b);
        assert_int_equal(hx_units_parse_size(b, &back), 0);
        assert_true(back == vals[i]);
    }
}

static void test_format_double(void **state)
{
    (void)state;
    char b[HX_UNITS_BUFSZ];
    assert_string_equal(hx_units_format_double(90, b, sizeof b), "90");
    assert_string_equal(hx_units_format_double(1.5, b, sizeof b), "1.5");
    assert_string_equal(hx_units_format_double(0.1, b, sizeof b), "0.1");
    const double vals[] = {0.1, 1.0 / 3, 12.5, 1e20, -2.75, 99.99};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        double back = 0;
        assert_int_equal(hx_units_parse_double(hx_units_format_double(vals[i], b, sizeof b), &back), 0);
        assert_true(back == vals[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_int_cases),
        cmocka_unit_test(test_parse_double_and_percent),
        cmocka_unit_test(test_parse_duration_good),
        cmocka_unit_test(test_parse_duration_rounds_up_below_ms),
        cmocka_unit_test(test_parse_duration_bad),
        cmocka_unit_test(test_parse_size_good),
        cmocka_unit_test(test_parse_size_bad),
        cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_format_duration_round_trips),
        cmocka_unit_test(test_format_size),
        cmocka_unit_test(test_format_double),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
