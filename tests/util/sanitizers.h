// Whether this translation unit is built with AddressSanitizer or
// ThreadSanitizer (GCC's __SANITIZE_*__ macros, Clang's __has_feature), for
// tests whose measurements a sanitizer's runtime changes: shadow memory
// (address-space caps) or allocator quarantine (RSS). Integration tests
// built that way run a server built that way too (scripts/asan.sh,
// scripts/tsan.sh). Constants only; thread-safe.
#ifndef NNSERVE_TESTS_UTIL_SANITIZERS_H_
#define NNSERVE_TESTS_UTIL_SANITIZERS_H_

namespace nnserve::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

}  // namespace nnserve::testing

#endif  // NNSERVE_TESTS_UTIL_SANITIZERS_H_
