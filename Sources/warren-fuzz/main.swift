import FuzzTargets
import Foundation
import WarrenCore

// `warren-fuzz TARGET [arguments]`. Built by `scripts/fuzz` with `-sanitize=fuzzer` and
// `-D WARREN_FUZZ`, it hands TARGET to libFuzzer with the remaining arguments (corpus
// directories, -max_total_time=…). Built normally, it replays the files and directories
// given through TARGET and exits 1 on the first failure (a crash stops it anyway).

let arguments = CommandLine.arguments
let catalog = (try? EventCatalog(directory: ProcessInfo.processInfo.environment["WARREN_CATALOG"] ?? EventCatalog.defaultDirectory))
    ?? EventCatalog(schemas: [:])
let targets = FuzzTargets.all(catalog: catalog)
guard arguments.count >= 2, let target = targets.first(where: { $0.name == arguments[1] }) else {
    FileHandle.standardError.write(Data("usage: warren-fuzz TARGET [libFuzzer arguments | files…]; targets: \(targets.map(\.name).joined(separator: ", "))\n".utf8))
    exit(2)
}

#if WARREN_FUZZ
nonisolated(unsafe) var current: FuzzTarget? = target

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

// libFuzzer sees the program name followed by the arguments after TARGET.
var argc = Int32(CommandLine.argc - 1)
var argv = CommandLine.unsafeArgv.advanced(by: 1)
argv[0] = CommandLine.unsafeArgv[0]
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let failure = current!.run(bytes) { fatalError("\(current!.name): \(failure)") }
    return 0
})
#else
var files: [String] = []
for path in arguments.dropFirst(2) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
    if isDirectory.boolValue {
        files += ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
    } else {
        files.append(path)
    }
}
for file in files {
    guard let data = FileManager.default.contents(atPath: file) else { continue }
    if let failure = target.run(Array(data)) {
        FileHandle.standardError.write(Data("warren-fuzz: \(target.name): \(file): \(failure)\n".utf8))
        exit(1)
    }
}
print("\(target.name): \(files.count) inputs, no failure")
#endif
