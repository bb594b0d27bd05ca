//! QUEUE and STACK (kernel/bpf/queue_stack_maps.c): a ring of
//! `max_entries + 1` value slots; push with BPF_EXIST on a full map drops
//! the oldest element, for both kinds.

use super::storage::Storage;
use super::*;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Ends {
    head: usize,
    tail: usize,
}

#[derive(Debug)]
pub struct QueueStack {
    def: MapDef,
    stack: bool,
    size: usize,
    elem: usize,
    ends: Mutex<Ends>,
    store: Storage,
}

impl QueueStack {
    pub fn new(def: &MapDef) -> Result<QueueStack, MapError> {
        let mask = create_flags::NUMA_NODE | create_flags::ACCESS_MASK;
        if def.max_entries == 0
            || def.key_size != 0
            || def.value_size == 0
            || def.flags & !mask != 0
            || !access_ok(def.flags)
        {
            return Err(invalid(
                def,
                "queues and stacks need key_size 0, value_size > 0, max_entries > 0",
            ));
        }
        if def.value_size as u64 > 4 << 20 {
            return Err(MapError::TooBig);
        }
        let size = def.max_entries as usize + 1;
        let elem = round8(def.value_size as usize);
        Ok(QueueStack {
            def: def.clone(),
            stack: def.map_type == types::STACK,
            size,
            elem,
            ends: Mutex::new(Ends::default()),
            store: Storage::array(size, elem)?,
        })
    }

    fn ends(&self) -> std::sync::MutexGuard<'_, Ends> {
        self.ends.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, delete: bool) -> Result<Vec<u8>, MapError> {
        let mut e = self.ends();
        if e.head == e.tail {
            return Err(MapError::NotFound);
        }
        let vs = self.def.value_size as usize;
        if self.stack {
            let i = if e.head == 0 {
                self.size - 1
            } else {
                e.head - 1
            };
            let v = self.store.read(i * self.elem, vs);
            if delete {
                e.head = i;
            }
            Ok(v)
        } else {
            let v = self.store.read(e.tail * self.elem, vs);
            if delete {
                e.tail = (e.tail + 1) % self.size;
            }
            Ok(v)
        }
    }

    fn do_push(&self, value: &[u8], flags: u64) -> Result<(), MapError> {
        check_value(&self.def, value, self.def.value_size as usize)?;
        if flags & BPF_NOEXIST != 0 || flags > BPF_EXIST {
            return Err(invalid(&self.def, format_args!("push flags {flags:#x}")));
        }
        let mut e = self.ends();
        if (e.head + 1) % self.size == e.tail {
            if flags & BPF_EXIST == 0 {
                return Err(MapError::TooBig);
            }
            // Drop the oldest element.
            e.tail = (e.tail + 1) % self.size;
        }
        self.store.write(e.head * self.elem, value);
        e.head = (e.head + 1) % self.size;
        Ok(())
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        let e = self.ends();
        (e.head + self.size - e.tail) % self.size
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl BpfMap for QueueStack {
    fn def(&self) -> &MapDef {
        &self.def
    }

    /// The syscall's lookup is a peek.
    fn lookup(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        self.take(false)
    }

    /// The syscall's update is a push.
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        self.do_push(value, flags)
    }

    fn delete(&self, key: &[u8]) -> Result<(), MapError> {
        check_key(&self.def, key)?;
        Err(invalid(
            &self.def,
            "queue/stack elements cannot be deleted by key",
        ))
    }

    fn get_next_key(&self, _key: Option<&[u8]>) -> Result<Vec<u8>, MapError> {
        Err(invalid(&self.def, "queues and stacks have no keys"))
    }

    /// The syscall's lookup-and-delete is a pop.
    fn lookup_and_delete(&self, key: &[u8]) -> Result<Vec<u8>, MapError> {
        check_key(&self.def, key)?;
        self.take(true)
    }

    fn prog_update(
        &self,
        _key: &[u8],
        value: &[u8],
        flags: u64,
        _cpu: u32,
    ) -> Result<(), MapError> {
        self.do_push(value, flags)
    }

    fn prog_delete(&self, _key: &[u8]) -> Result<(), MapError> {
        Err(invalid(
            &self.def,
            "queue/stack elements cannot be deleted by key",
        ))
    }

    fn push(&self, value: &[u8], flags: u64) -> Result<(), MapError> {
        self.do_push(value, flags)
    }

    fn pop(&self) -> Result<Vec<u8>, MapError> {
        self.take(true)
    }

    fn peek(&self) -> Result<Vec<u8>, MapError> {
        self.take(false)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
