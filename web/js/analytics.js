// placeholder: filled in by its page's change
export function start() {}
