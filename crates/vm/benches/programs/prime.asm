# Prime counting by trial division: how many n in [2, [r1+0]) have no
# divisor d with d*d <= n. The inner loop is one 64-bit modulo by a register
# per candidate divisor.
ldxdw %r2, [%r1+0]
mov %r0, 0
mov %r3, 2
outer:
jge %r3, %r2, done
mov %r4, 2
inner:
mov %r5, %r4
mul %r5, %r4
jgt %r5, %r3, isprime
mov %r5, %r3
mod %r5, %r4
jeq %r5, 0, next
add %r4, 1
ja inner
isprime:
add %r0, 1
next:
add %r3, 1
ja outer
done:
exit
