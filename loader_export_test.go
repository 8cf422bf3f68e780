package stampede

// SetLoaderJoinHook makes l call fn each time a call starts waiting on another call's load.
func SetLoaderJoinHook[K comparable, V any](l *Loader[K, V], fn func()) { l.e.onJoin = fn }

// SetLoaderDropHook makes l call fn each time an announced invalidation drops a key from its
// in-process tier.
func SetLoaderDropHook[K comparable, V any](l *Loader[K, V], fn func(key string)) {
	l.e.onDropped.Store(&fn)
}

// LoaderKey returns the store key l uses for k.
func LoaderKey[K comparable, V any](l *Loader[K, V], k K) string { return l.key(k).s }
