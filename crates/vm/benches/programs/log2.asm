# Integer log2 by a binary search of shifts and compares, over the values
# v = i * 0x9e3779b97f4a7c15 (wrapping) for i in 1..=[r1+0], so every bit
# length occurs. Returns the sum of floor(log2(v)) (v = 0 counts as 0).
ldxdw %r2, [%r1+0]
lddw %r7, 0x9e3779b97f4a7c15
mov %r0, 0
mov %r3, 1
outer:
mov %r4, %r3
mul %r4, %r7
mov %r5, 0
mov %r6, %r4
rsh %r6, 32
jeq %r6, 0, s16
mov %r4, %r6
add %r5, 32
s16:
mov %r6, %r4
rsh %r6, 16
jeq %r6, 0, s8
mov %r4, %r6
add %r5, 16
s8:
mov %r6, %r4
rsh %r6, 8
jeq %r6, 0, s4
mov %r4, %r6
add %r5, 8
s4:
mov %r6, %r4
rsh %r6, 4
jeq %r6, 0, s2
mov %r4, %r6
add %r5, 4
s2:
mov %r6, %r4
rsh %r6, 2
jeq %r6, 0, s1
mov %r4, %r6
add %r5, 2
s1:
jlt %r4, 2, acc
add %r5, 1
acc:
add %r0, %r5
add %r3, 1
jle %r3, %r2, outer
exit
