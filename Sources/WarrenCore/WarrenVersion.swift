/// Warren's release, as `warren --version` prints it and `User-Agent: Warren/<version>` sends it.
public enum WarrenVersion {
    public static let current = "0.6.0"
}
