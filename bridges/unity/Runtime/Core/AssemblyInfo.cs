using System.Runtime.CompilerServices;

// The tests send messages a correct client never would (another protocol version).
[assembly: InternalsVisibleTo("NpcEngine.Tests")]
