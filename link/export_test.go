package link

// WaitBlocked exports waitBlocked to the external test package.
var WaitBlocked = waitBlocked
