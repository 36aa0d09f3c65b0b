package mqtt

import "github.com/eclipse/paho.mqtt.golang/packets"

// discardStore is a Paho store that keeps nothing. Otherwise Paho resends unacknowledged
// QoS 1 messages after a reconnect even with a clean session. Paho 1.5.1 does that
// concurrently with the OnConnect handler, so it also resends the messages published
// from the handler and sets their DUP flag while they are being written (a data race
// that the race detector reports). Without resends, a Publish whose connection was lost
// reports the loss, and callers publish fresh state after the reconnect.
type discardStore struct{}

func (discardStore) Open()                             {}
func (discardStore) Put(string, packets.ControlPacket) {}
func (discardStore) Get(string) packets.ControlPacket  { return nil }
func (discardStore) All() []string                     { return nil }
func (discardStore) Del(string)                        {}
func (discardStore) Close()                            {}
func (discardStore) Reset()                            {}
