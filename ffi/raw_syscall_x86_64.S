# long raw_syscall(int nr, int a1, void *a2, unsigned a3, long a4, long a5)
#
# Issues system call `nr` and returns what the kernel returned: the result,
# or -errno. Unlike libc's wrappers it never touches errno, so the caller
# does not depend on errno surviving the way back from an FFI call into
# JavaScript. System V AMD64 call -> Linux syscall register order
# (syscall(2): rax = nr; rdi, rsi, rdx, r10, r8 = arguments 1-5).
# ffi/raw_syscall.ts holds these bytes; tests/ffi_raw_syscall_test.ts
# re-assembles this file with `as` and compares.
	.text
	.globl raw_syscall
raw_syscall:
	# 32-bit arguments arrive with undefined upper halves: extend them.
	movl %edi, %eax         # nr, zero-extended
	movslq %esi, %rdi       # a1 (a descriptor), sign-extended
	mov %rdx, %rsi          # a2 (a pointer)
	movl %ecx, %edx         # a3 (flags), zero-extended
	mov %r8, %r10
	mov %r9, %r8
	syscall
	ret
