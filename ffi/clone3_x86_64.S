/*
 * isola's clone3 trampoline for x86_64 (System V ABI, Linux syscalls).
 *
 * C prototype, as called through Deno.UnsafeFnPointer:
 *
 *   long isola_clone3(struct isola_spawn *p);
 *
 * struct isola_spawn (every field 8 bytes; see ffi/clone3_trampoline.ts):
 *    0  struct clone_args *args     clone3(2) arguments
 *    8  size_t args_size            sizeof(struct clone_args)
 *   16  struct isola_op *ops        system calls the child makes before exec
 *   24  size_t nops
 *   32  const char *path            execve(2) arguments
 *   40  char *const *argv
 *   48  char *const *envp
 *   56  int err; int step           written by the child on failure
 *
 * struct isola_op (64 bytes): long nr, a0, a1, a2, a3, a4, expect, flags.
 * The child makes syscall(nr, a0, a1, a2, a3, a4, 0); a result in
 * [-4095, -1] is a failure, and so is a result other than `expect` when
 * `expect` is not 0 (then the error is ESRCH: used for getppid() after
 * PR_SET_PDEATHSIG). `flags`:
 *   1  a0 is replaced by the saved result (a descriptor opened earlier)
 *   2  the result is saved (r15) for later ops
 *   4  a failure is ignored (best-effort steps)
 *   8  a positive result ends this task with exit_group(0): for a clone3
 *      op, the task that called it stops and the new one (result 0) goes
 *      on with the next op (a spawn in two stages)
 *
 * Parent: returns what clone3 returned (the child's pid, or -errno). With
 * CLONE_VM|CLONE_VFORK it returns once the child has exec'd or exited.
 *
 * Child: never returns and never touches memory other than the block above
 * (it runs in the parent's address space under CLONE_VM, and on no stack of
 * its own beyond what clone_args gives it). On failure it stores -errno and
 * the failing step (ops index; nops means execve) into p->err / p->step and
 * calls exit_group(127).
 *
 * Assemble: as --64 -o clone3.o clone3_x86_64.S
 *           objcopy -O binary --only-section=.text clone3.o clone3.bin
 * tests/ffi/clone3_test.ts checks the result against the bytes in
 * ffi/clone3_trampoline.ts.
 */
	.intel_syntax noprefix
	.text
	.globl isola_clone3
	.type isola_clone3, @function
isola_clone3:
	push rbx			/* callee-saved; holds p in both tasks */
	mov rbx, rdi
	mov rdi, [rbx + 0]		/* clone_args */
	mov rsi, [rbx + 8]		/* size */
	mov eax, 435			/* __NR_clone3 */
	syscall
	test rax, rax
	jz .Lchild
	pop rbx				/* parent (or clone3 failed): return rax */
	ret

.Lchild:
	mov r12, [rbx + 16]		/* op cursor */
	mov r13, [rbx + 24]		/* op count */
	xor r14d, r14d			/* step */
	xor r15d, r15d			/* saved result */
.Lop:
	cmp r14, r13
	jae .Lexec
	mov rax, [r12 + 0]
	mov rdi, [r12 + 8]
	test byte ptr [r12 + 56], 1	/* a0 = saved result? */
	jz .Largs
	mov rdi, r15
.Largs:
	mov rsi, [r12 + 16]
	mov rdx, [r12 + 24]
	mov r10, [r12 + 32]
	mov r8, [r12 + 40]
	xor r9d, r9d
	syscall
	test byte ptr [r12 + 56], 8	/* stop this task on a positive result? */
	jz .Lsave
	test rax, rax
	jg .Lquit
.Lsave:
	test byte ptr [r12 + 56], 2	/* save the result? */
	jz .Lcheck
	mov r15, rax
.Lcheck:
	cmp rax, -4095			/* unsigned: -4095..-1 is -errno */
	jae .Lerr
	mov rcx, [r12 + 48]		/* expected result, 0 = any */
	test rcx, rcx
	jz .Lnext
	cmp rax, rcx
	je .Lnext
	mov rax, -3			/* -ESRCH */
.Lerr:
	test byte ptr [r12 + 56], 4	/* failure tolerated? */
	jz .Lfail
.Lnext:
	add r12, 64
	inc r14
	jmp .Lop

.Lexec:
	mov rdi, [rbx + 32]
	mov rsi, [rbx + 40]
	mov rdx, [rbx + 48]
	mov eax, 59			/* __NR_execve; returns only on failure */
	syscall

.Lfail:
	neg eax				/* errno */
	mov [rbx + 56], eax
	mov [rbx + 60], r14d
	mov edi, 127
	mov eax, 231			/* __NR_exit_group */
	syscall
	ud2

.Lquit:				/* the first task of a two-stage spawn */
	xor edi, edi
	mov eax, 231			/* __NR_exit_group */
	syscall
	ud2
	.size isola_clone3, . - isola_clone3
	.section .note.GNU-stack, "", @progbits
