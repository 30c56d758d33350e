//! The dozen functions of chDB's C API (`chdb.h`) that Roost uses, resolved from `libchdb.so` at
//! run time so that building Roost never needs the library.

use std::ffi::{c_char, c_double, c_int, c_void};
use std::ptr::null_mut;

/// `struct chdb_connection_ *`: a connection handle.
pub type Connection = *mut c_void;
/// `chdb_result *`.
pub type ResultPtr = *mut c_void;
/// `chdb_insert_stream`.
pub type InsertStream = *mut c_void;

pub const CHDB_SUCCESS: c_int = 0;

/// Function pointers copied out of the loaded library; valid for as long as it stays loaded,
/// which is the life of the process (see `Library::leak` in the loader).
pub struct Api {
    pub connect: unsafe extern "C" fn(c_int, *mut *mut c_char) -> *mut Connection,
    pub query_n:
        unsafe extern "C" fn(Connection, *const c_char, usize, *const c_char, usize) -> ResultPtr,
    pub destroy_query_result: unsafe extern "C" fn(ResultPtr),
    pub result_buffer: unsafe extern "C" fn(ResultPtr) -> *mut c_char,
    pub result_length: unsafe extern "C" fn(ResultPtr) -> usize,
    pub result_elapsed: unsafe extern "C" fn(ResultPtr) -> c_double,
    pub result_rows_read: unsafe extern "C" fn(ResultPtr) -> u64,
    pub result_bytes_read: unsafe extern "C" fn(ResultPtr) -> u64,
    pub result_rows_written: unsafe extern "C" fn(ResultPtr) -> u64,
    pub result_bytes_written: unsafe extern "C" fn(ResultPtr) -> u64,
    pub result_error: unsafe extern "C" fn(ResultPtr) -> *const c_char,
    pub stream_insert_n: unsafe extern "C" fn(
        Connection,
        *const c_char,
        usize,
        *const c_char,
        usize,
    ) -> InsertStream,
    pub stream_append: unsafe extern "C" fn(InsertStream, *const c_void, usize) -> c_int,
    pub stream_done: unsafe extern "C" fn(InsertStream) -> ResultPtr,
    pub stream_insert_error: unsafe extern "C" fn(InsertStream) -> *const c_char,
    pub destroy_insert_stream: unsafe extern "C" fn(InsertStream),
    /// Starts a streaming query; the handle is a result (carrying the error when it failed).
    pub stream_query_n:
        unsafe extern "C" fn(Connection, *const c_char, usize, *const c_char, usize) -> ResultPtr,
    /// The next chunk of a streaming query: a result of its own, empty at the end.
    pub stream_fetch_result: unsafe extern "C" fn(Connection, ResultPtr) -> ResultPtr,
    /// Stops a streaming query that was not read to its end.
    pub stream_cancel_query: unsafe extern "C" fn(Connection, ResultPtr),
    pub set_signal_handlers_enabled: unsafe extern "C" fn(c_int),
    pub version: unsafe extern "C" fn() -> *const c_char,
}

impl Api {
    /// Resolves every symbol; fails naming the first one missing (an older libchdb).
    ///
    /// # Safety
    /// `library` must be chDB's `libchdb.so`, whose symbols have the signatures declared above,
    /// and it must never be unloaded.
    pub unsafe fn load(library: &'static libloading::Library) -> Result<Api, libloading::Error> {
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the caller vouches for the library and its signatures.
                *unsafe { library.get(concat!($name, "\0").as_bytes())? }
            };
        }
        Ok(Api {
            connect: symbol!("chdb_connect"),
            query_n: symbol!("chdb_query_n"),
            destroy_query_result: symbol!("chdb_destroy_query_result"),
            result_buffer: symbol!("chdb_result_buffer"),
            result_length: symbol!("chdb_result_length"),
            result_elapsed: symbol!("chdb_result_elapsed"),
            result_rows_read: symbol!("chdb_result_rows_read"),
            result_bytes_read: symbol!("chdb_result_bytes_read"),
            result_rows_written: symbol!("chdb_result_rows_written"),
            result_bytes_written: symbol!("chdb_result_bytes_written"),
            result_error: symbol!("chdb_result_error"),
            stream_insert_n: symbol!("chdb_stream_insert_n"),
            stream_append: symbol!("chdb_stream_append"),
            stream_done: symbol!("chdb_stream_done"),
            stream_insert_error: symbol!("chdb_stream_insert_error"),
            destroy_insert_stream: symbol!("chdb_destroy_insert_stream"),
            stream_query_n: symbol!("chdb_stream_query_n"),
            stream_fetch_result: symbol!("chdb_stream_fetch_result"),
            stream_cancel_query: symbol!("chdb_stream_cancel_query"),
            set_signal_handlers_enabled: symbol!("chdb_set_signal_handlers_enabled"),
            version: symbol!("chdb_version"),
        })
    }
}

// glibc (chDB ships for linux-gnu only): an exit handler that is told the exit status, the exit
// that runs no handlers, and a thread's nice value.
unsafe extern "C" {
    fn on_exit(function: extern "C" fn(c_int, *mut c_void), argument: *mut c_void) -> c_int;
    fn fflush(stream: *mut c_void) -> c_int;
    fn _exit(status: c_int) -> !;
    fn setpriority(which: c_int, who: u32, priority: c_int) -> c_int;
}

/// Ends the process, once it calls `exit`, before any exit handler registered earlier runs:
/// chDB's static destructors are such handlers, and they tear its globals down under threads
/// (merges, pools) still running, which now and then crashes a process on its way out (seen
/// as SIGSEGV after every test of a binary had passed). Everything chDB stores is on disk once a
/// call returns, so nothing is lost. Handlers run last-registered first; chDB registers some on
/// first use, so this is called again after each new connection.
pub fn end_before_engine_destructors() {
    extern "C" fn end_now(status: c_int, _: *mut c_void) {
        // SAFETY: fflush(NULL) flushes every C stream; _exit ends the process with the status
        // `exit` was given (Rust's own stdout is flushed before `exit` is called).
        unsafe {
            fflush(null_mut());
            _exit(status)
        }
    }
    // SAFETY: registers a handler with the signature glibc calls it with. A failure (out of
    // memory) only leaves the process to exit the usual way.
    unsafe { on_exit(end_now, null_mut()) };
}

/// Sets the nice value of one thread of this process (Linux: `PRIO_PROCESS` with a thread id
/// applies to that thread alone). Raising one's own nice value needs no privilege.
pub fn set_thread_nice(thread_id: u32, nice: i32) -> std::io::Result<()> {
    const PRIO_PROCESS: c_int = 0;
    // SAFETY: a plain system call on integers.
    if unsafe { setpriority(PRIO_PROCESS, thread_id, nice) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
