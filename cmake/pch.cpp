// Compiled once to build the shared precompiled header.
