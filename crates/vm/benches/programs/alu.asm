# ALU loop: [r1+0] iterations of a 12-instruction body of 64-bit ALU
# operations (add, xor, shifts, mul, and, or, sub) on registers and
# immediates, closed by a decrement and a backward conditional jump.
# Returns a hash of the final state.
ldxdw %r2, [%r1+0]
mov %r0, 0
mov %r3, 1
mov %r4, 0x12345
loop:
add %r0, %r3
xor %r0, 0x5bd1e995
mov %r5, %r0
rsh %r5, 7
xor %r0, %r5
mul %r3, 33
add %r3, %r2
and %r3, 0xffffff
or %r4, %r3
sub %r4, %r0
lsh %r4, 1
sub %r2, 1
jne %r2, 0, loop
add %r0, %r4
exit
