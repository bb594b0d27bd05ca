# Switch: for each of the [r1+0] bytes at r1+16, a chain of compares on the
# low four bits selects one of 16 cases (a jump table compiled as a chain,
# as clang does for sparse switches). Each case applies a different ALU
# operation to the accumulator r0. Returns the accumulator.
ldxdw %r2, [%r1+0]
mov %r3, %r1
add %r3, 16
mov %r0, 0
jeq %r2, 0, done
loop:
ldxb %r4, [%r3+0]
and %r4, 15
jeq %r4, 0, case0
jeq %r4, 1, case1
jeq %r4, 2, case2
jeq %r4, 3, case3
jeq %r4, 4, case4
jeq %r4, 5, case5
jeq %r4, 6, case6
jeq %r4, 7, case7
jeq %r4, 8, case8
jeq %r4, 9, case9
jeq %r4, 10, case10
jeq %r4, 11, case11
jeq %r4, 12, case12
jeq %r4, 13, case13
jeq %r4, 14, case14
ja case15
case0:
add %r0, 11
add %r0, 0
ja next
case1:
xor %r0, 48
add %r0, 1
ja next
case2:
mul %r0, 3
add %r0, 2
ja next
case3:
sub %r0, 122
add %r0, 3
ja next
case4:
lsh %r0, 1
add %r0, 4
ja next
case5:
rsh %r0, 1
add %r0, 5
ja next
case6:
or %r0, 233
add %r0, 6
ja next
case7:
and %r0, 0x7fffffff
add %r0, 7
ja next
case8:
add %r0, 307
add %r0, 8
ja next
case9:
xor %r0, 344
add %r0, 9
ja next
case10:
mul %r0, 3
add %r0, 10
ja next
case11:
sub %r0, 418
add %r0, 11
ja next
case12:
lsh %r0, 1
add %r0, 12
ja next
case13:
rsh %r0, 1
add %r0, 13
ja next
case14:
or %r0, 529
add %r0, 14
ja next
case15:
and %r0, 0x7fffffff
add %r0, 15
next:
add %r3, 1
sub %r2, 1
jne %r2, 0, loop
done:
exit
