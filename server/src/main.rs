fn main() -> std::process::ExitCode {
    bhavstore::cli::main()
}
